"""CambHook over a real loopback socket against the emulator: what users meet in production."""

from __future__ import annotations

import math

import pytest

from airflow_provider_camb.exceptions import CambAuthError, CambRunsMissingError
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
