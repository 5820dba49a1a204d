"""CambHook over a real loopback socket against the emulator: what users meet in production."""

from __future__ import annotations

import math

import pytest

from airflow_provider_camb.exceptions import CambAPIError, CambAuthError, CambRunsMissingError
from airflow_provider_camb.hooks.camb import CambHook


@pytest.mark.parametrize("shape", ["url", "object"])
def test_eleven_runs_come_back_in_three_valid_bulk_calls(camb_emulator, shape):
    camb_emulator.bulk_value_shape = shape
    run_ids = camb_emulator.add_tts_runs(11)

    urls = CambHook().get_tts_results(run_ids)

    assert list(urls) == run_ids
    assert all(url.startswith(camb_emulator.server_url) for url in urls.values())
    bulk_calls = camb_emulator.requests("tts_results")
    assert [len(call.json["run_ids"]) for call in bulk_calls] == [4, 4, 3]
    assert len(bulk_calls) == math.ceil(len(run_ids) / 5)
    assert all(call.status == 200 and call.api_key_sent for call in bulk_calls)


def test_an_unknown_run_is_named_when_the_server_leaves_it_out(camb_emulator):
    good = camb_emulator.add_tts_runs(3)
    unfinished = camb_emulator.add_tts_runs(1, finished=False)

    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_tts_results([*good, *unfinished, 999_999])

    assert list(caught.value.urls) == good
    assert set(caught.value.missing) == {unfinished[0], 999_999}


def test_a_server_that_rejects_whole_chunks_still_delivers_the_good_runs(camb_emulator):
    camb_emulator.bulk_missing = "reject"
    good = camb_emulator.add_tts_runs(4)

    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_tts_results([*good, 424_242])

    assert list(caught.value.urls) == good
    assert list(caught.value.missing) == [424_242]
    assert caught.value.missing[424_242]  # the API's reason travels with the ID
    assert [c.status for c in camb_emulator.requests("tts_results")] == [400]
    assert len(camb_emulator.requests("tts_result")) == 5


def test_rate_limits_and_server_errors_are_ridden_out(camb_emulator, _instant_retries):
    run_ids = camb_emulator.add_tts_runs(2)
    camb_emulator.fail_next("tts_results", count=2, status=429, retry_after=2)
    camb_emulator.fail_next("tts_results", count=1, status=503)

    assert list(CambHook().get_tts_results(run_ids)) == run_ids
    assert [c.status for c in camb_emulator.requests("tts_results")] == [429, 429, 503, 200]
    assert _instant_retries[:2] == [2.0, 2.0]


def test_a_wrong_key_is_rejected_without_retries(camb_emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        f'{{"conn_type": "camb", "host": "{camb_emulator.base_url}", "password": "wrong-key"}}',
    )
    with pytest.raises(CambAuthError):
        CambHook().get_tts_results(camb_emulator.add_tts_runs(2))
    assert [c.status for c in camb_emulator.journal] == [401]


def test_task_status_follows_the_task_to_success(camb_emulator):
    (task_id,) = camb_emulator.add_tts_tasks(1, pending_polls=1)
    hook = CambHook()
    assert hook.get_tts_task_status(task_id).status == "PENDING"
    done = hook.get_tts_task_status(task_id)
    assert done.is_success
    assert done.run_id == camb_emulator.run_id_for_task(task_id)


def test_test_connection_makes_one_read_only_call(camb_emulator):
    ok, message = CambHook().test_connection()
    assert ok, message
    assert [(c.method, c.endpoint) for c in camb_emulator.journal] == [("GET", "source_languages")]


# -- the API key goes to the configured API origin only ------------------------------------------


def _four_calls(camb_emulator):
    """The four hook calls a DAG makes, each as ``(name, endpoint, call)``."""
    run_ids = camb_emulator.add_tts_runs(2)
    (task_id,) = camb_emulator.add_tts_tasks(1)
    return [
        ("bulk results", "tts_results", lambda hook: hook.get_tts_results(run_ids)),
        ("single result", "tts_result", lambda hook: hook.get_tts_result_url(run_ids[0])),
        ("task status", "tts_status", lambda hook: hook.get_tts_task_status(task_id)),
        ("test_connection", "source_languages", lambda hook: hook.test_connection()),
    ]


@pytest.mark.parametrize("call_index", range(4), ids=["bulk", "single", "status", "test_connection"])
def test_a_redirect_to_another_host_is_refused_and_the_key_never_reaches_it(camb_emulator, call_index):
    name, endpoint, call = _four_calls(camb_emulator)[call_index]
    camb_emulator.redirect_next(count=1, endpoint=endpoint)

    if name == "test_connection":
        ok, message = call(CambHook())
        assert not ok
        error_text = message
    else:
        with pytest.raises(CambAPIError) as caught:
            call(CambHook())
        assert caught.value.status_code == 302
        error_text = str(caught.value)

    assert "redirect" in error_text
    assert camb_emulator.foreign_host in error_text  # the target host is named...
    assert "?" not in error_text.split(camb_emulator.foreign_host, 1)[1].split()[0].rstrip("?…,.")
    assert camb_emulator.redirected_requests == []  # ...and never contacted, key or no key


def test_a_caller_following_redirects_through_the_hook_session_does_not_leak_the_key(camb_emulator):
    camb_emulator.redirect_next(count=1, endpoint="source_languages")
    hook = CambHook()

    answer = hook.get_conn().get(f"{hook.settings.base_url}/source-languages", timeout=10)

    assert answer.status_code == 200  # the foreign host answered...
    (seen,) = camb_emulator.redirected_requests
    assert seen.api_key_sent is False  # ...without ever seeing the key


# -- the connection Test -------------------------------------------------------------------------


def test_test_connection_gives_up_on_a_silent_host_within_seconds_without_retries(monkeypatch):
    import json
    import socket
    import time

    import airflow_provider_camb.hooks.camb as hook_module

    # A host that accepts connections and never answers: the worst case for a spinner.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        host, port = silent.getsockname()
        monkeypatch.setenv(
            "AIRFLOW_CONN_CAMB_DEFAULT",
            json.dumps(
                {
                    "conn_type": "camb",
                    "host": f"http://{host}:{port}/apis",
                    "password": "k",
                    "extra": {"timeout": 60, "max_retries": 5},
                }
            ),
        )
        monkeypatch.setattr(hook_module, "TEST_CONNECTION_TIMEOUT_SECONDS", 0.5)
        started = time.monotonic()
        ok, message = CambHook().test_connection()
        elapsed = time.monotonic() - started
    finally:
        silent.close()

    assert not ok
    assert "no answer within 0.5 s after 1 attempt" in message
    assert "API Base URL" in message
    assert elapsed < 3  # one attempt of 0.5 s, not 6 attempts of 60 s
    assert hook_module.TEST_CONNECTION_TIMEOUT_SECONDS * 2 < 10


def test_test_connection_without_a_key_names_the_field_not_the_connection_id(monkeypatch):
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_8VFUYVIK", json.dumps({"conn_type": "camb", "host": "http://127.0.0.1:9"})
    )

    ok, message = CambHook(camb_conn_id="8VFuYViK").test_connection()

    assert not ok
    assert "'API Key' field" in message
    assert "8VFuYViK" not in message


def test_test_connection_with_a_wrong_key_names_the_api_key_field(camb_emulator, monkeypatch):
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps({"conn_type": "camb", "host": camb_emulator.base_url, "password": "wrong"}),
    )
    ok, message = CambHook().test_connection()
    assert not ok
    assert message == "Camb.ai rejected the API key (HTTP 401). Check the 'API Key' field."
    assert "password" not in message.lower()


# -- the async status call of triggers -----------------------------------------------------------


def test_the_async_status_call_reads_answers_and_retries_like_the_blocking_one(
    camb_emulator, _instant_retries
):
    import asyncio

    (task_id,) = camb_emulator.add_tts_tasks(1, pending_polls=1)
    camb_emulator.fail_next("tts_status", count=1, status=429, retry_after=3)
    camb_emulator.fail_next("tts_status", count=1, status=503)

    async def two_polls() -> list[object]:
        hook = CambHook()
        return [await hook.aget_tts_task_status(task_id), await hook.aget_tts_task_status(task_id)]

    first, second = asyncio.run(two_polls())

    assert first.status == "PENDING"  # type: ignore[attr-defined]
    assert second.is_success and second.run_id == camb_emulator.run_id_for_task(task_id)  # type: ignore[attr-defined]
    assert [c.status for c in camb_emulator.requests("tts_status")] == [429, 503, 200, 200]
    assert _instant_retries[0] == 3.0


@pytest.mark.parametrize("trouble", ["redirect", "wrong key", "unknown task"])
def test_the_async_status_call_fails_like_the_blocking_one(camb_emulator, monkeypatch, trouble):
    import asyncio
    import json

    (task_id,) = camb_emulator.add_tts_tasks(1)
    if trouble == "redirect":
        camb_emulator.redirect_next(count=1, endpoint="tts_status")
    elif trouble == "wrong key":
        monkeypatch.setenv(
            "AIRFLOW_CONN_CAMB_DEFAULT",
            json.dumps({"conn_type": "camb", "host": camb_emulator.base_url, "password": "wrong"}),
        )
    else:
        task_id = "no-such-task"

    def blocking() -> str:
        with pytest.raises(CambAPIError) as caught:
            CambHook().get_tts_task_status(task_id)
        return f"{type(caught.value).__name__}: {caught.value}"

    async def non_blocking() -> str:
        with pytest.raises(CambAPIError) as caught:
            await CambHook().aget_tts_task_status(task_id)
        return f"{type(caught.value).__name__}: {caught.value}"

    if trouble == "redirect":
        camb_emulator.redirect_next(count=1, endpoint="tts_status")
    assert asyncio.run(non_blocking()) == blocking()
    assert camb_emulator.redirected_requests == []


def test_triggers_starting_together_share_one_http_client_per_event_loop(camb_emulator, monkeypatch):
    import asyncio

    import httpx

    from airflow_provider_camb.hooks import _async_http

    made: list[object] = []

    class CountedClient(httpx.AsyncClient):
        def __init__(self, **kwargs: object) -> None:
            made.append(self)
            super().__init__(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_async_http.httpx, "AsyncClient", CountedClient)
    task_ids = camb_emulator.add_tts_tasks(50)

    async def fifty_triggers() -> None:
        statuses = await asyncio.gather(*(CambHook().aget_tts_task_status(t) for t in task_ids))
        assert all(status.is_success for status in statuses)

    asyncio.run(fifty_triggers())
    assert len(made) == 1  # one client (one TLS context, one pool) for fifty hooks
    assert len(camb_emulator.requests("tts_status")) == 50
    asyncio.run(fifty_triggers())
    assert len(made) == 2  # a new event loop gets its own: a client is bound to its loop
