"""CambHook against requests_mock: chunking, value shapes, narrowing, errors, retries, secrecy."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from airflow_provider_camb import __version__
from airflow_provider_camb.exceptions import (
    CambAPIError,
    CambAuthError,
    CambConnectionConfigError,
    CambRunsMissingError,
)
from airflow_provider_camb.hooks.camb import DEFAULT_BASE_URL, CambHook
from airflow_provider_camb.utils.run_ids import InvalidRunIdsError
from tests.camb_api_fakes import BASE_URL, BULK, SINGLE, audio_url, bulk_answer, single_answer
from tests.hooks.conftest import API_KEY


def assert_valid_bulk_body(body: Any) -> None:
    """What the API's RunIDsRequestPayload accepts: 2 to 5 unique positive ints."""
    assert set(body) == {"run_ids"}
    ids = body["run_ids"]
    assert 2 <= len(ids) <= 5
    assert len(set(ids)) == len(ids)
    assert all(type(i) is int and i > 0 for i in ids)


# -- chunking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", range(1, 24))
def test_any_number_of_ids_goes_in_the_fewest_valid_calls(camb_connection, requests_mock, count):
    requests_mock.post(BULK, json=bulk_answer())
    requests_mock.get(SINGLE, json=single_answer())
    run_ids = list(range(100, 100 + count))

    urls = CambHook().get_tts_results(run_ids)

    assert urls == {i: audio_url(i) for i in run_ids}
    assert list(urls) == run_ids
    calls = requests_mock.request_history
    if count == 1:
        assert [(c.method, c.path) for c in calls] == [("GET", "/apis/tts-result/100")]
        assert calls[0].qs == {"output_type": ["file_url"]}
        return
    assert len(calls) == math.ceil(count / 5)
    sent: list[int] = []
    for call in calls:
        assert call.method == "POST"
        assert_valid_bulk_body(call.json())
        sent += call.json()["run_ids"]
    assert sent == run_ids


def test_six_ids_go_as_two_chunks_of_three(camb_connection, requests_mock):
    requests_mock.post(BULK, json=bulk_answer())
    CambHook().get_tts_results([1, 2, 3, 4, 5, 6])
    assert [c.json()["run_ids"] for c in requests_mock.request_history] == [[1, 2, 3], [4, 5, 6]]


def test_duplicates_are_dropped_and_order_kept(camb_connection, requests_mock):
    requests_mock.post(BULK, json=bulk_answer())
    urls = CambHook().get_tts_results([9, "3", 9, 3, 7])
    assert list(urls) == [9, 3, 7]
    assert requests_mock.request_history[0].json() == {"run_ids": [9, 3, 7]}


@pytest.mark.parametrize(
    ("bad_input", "named"),
    [
        ([1, True, 3], ["True"]),
        ([1, 2.0, 0, -4], ["2.0", "0", "-4"]),
        (["12", "abc", None, "1e3"], ["'abc'", "None", "'1e3'"]),
        ([], []),
        ({"1": "x"}, []),
    ],
)
def test_bad_run_ids_are_all_named_before_any_request(camb_connection, requests_mock, bad_input, named):
    with pytest.raises(InvalidRunIdsError) as caught:
        CambHook().get_tts_results(bad_input)
    for value in named:
        assert value in str(caught.value)
    assert requests_mock.call_count == 0


# -- answers -------------------------------------------------------------------------------------


def test_both_documented_value_shapes_are_accepted(camb_connection, requests_mock):
    requests_mock.post(
        BULK, json={"1": audio_url(1), "2": {"output_url": audio_url(2)}, "3": "  " + audio_url(3) + " "}
    )
    assert CambHook().get_tts_results([1, 2, 3]) == {1: audio_url(1), 2: audio_url(2), 3: audio_url(3)}


def test_ids_left_out_of_the_answer_raise_with_what_did_arrive(camb_connection, requests_mock):
    requests_mock.post(BULK, json=bulk_answer(shape="object", leave_out=frozenset({2, 7})))

    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_tts_results([1, 2, 3, 4, 5, 6, 7])

    assert caught.value.urls == {i: audio_url(i) for i in (1, 3, 4, 5, 6)}
    assert set(caught.value.missing) == {2, 7}
    assert "2 (left out" in str(caught.value)
    assert "7 (left out" in str(caught.value)


def test_a_null_or_error_value_counts_as_missing_with_its_reason(camb_connection, requests_mock):
    requests_mock.post(BULK, json={"1": audio_url(1), "2": None, "3": {"error": "run failed"}})
    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_tts_results([1, 2, 3])
    assert caught.value.urls == {1: audio_url(1)}
    assert caught.value.missing == {2: "the API returned no URL", 3: "run failed"}


def test_a_rejected_chunk_is_narrowed_to_the_bad_id(camb_connection, requests_mock):
    requests_mock.post(BULK, status_code=400, json={"detail": "Run IDs not found: [4]"})
    requests_mock.get(SINGLE, json=single_answer(bad={4: "Invalid run_id 4: not a TTS run"}))

    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_tts_results([1, 2, 3, 4, 5])

    assert caught.value.urls == {i: audio_url(i) for i in (1, 2, 3, 5)}
    assert caught.value.missing == {4: "Invalid run_id 4: not a TTS run"}
    singles = [c for c in requests_mock.request_history if c.method == "GET"]
    assert len(singles) == 5


def test_a_lone_bad_id_is_named_with_the_api_reason(camb_connection, requests_mock):
    requests_mock.get(SINGLE, json=single_answer(bad={8: "run 8 is not finished"}))
    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_tts_result_url(8)
    assert caught.value.missing == {8: "run 8 is not finished"}


# -- errors --------------------------------------------------------------------------------------


def test_a_422_detail_list_is_rendered_readably(camb_connection, requests_mock):
    requests_mock.get(
        f"{BASE_URL}/tts/abc",
        status_code=422,
        json={"detail": [{"loc": ["path", "task_id"], "msg": "value is not a valid uuid", "type": "uuid"}]},
    )
    with pytest.raises(CambAPIError) as caught:
        CambHook().get_tts_task_status("abc")
    assert caught.value.status_code == 422
    assert caught.value.endpoint == "GET /tts/{task_id}"
    assert str(caught.value) == (
        "Camb.ai GET /tts/{task_id} returned HTTP 422: path.task_id: value is not a valid uuid"
    )


def test_a_non_json_error_body_is_shown_shortened(camb_connection, requests_mock):
    requests_mock.post(BULK, status_code=418, text="<html>" + "x" * 2000 + "</html>")
    with pytest.raises(CambAPIError) as caught:
        CambHook().get_tts_results([1, 2])
    assert caught.value.status_code == 418
    assert len(caught.value.message) <= 300
    assert caught.value.message.startswith("<html>xxx")


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_says_so_and_never_shows_the_key(camb_connection, requests_mock, logs, status):
    requests_mock.post(BULK, status_code=status, json={"detail": f"Invalid API key {API_KEY}"})

    with pytest.raises(CambAuthError) as caught:
        CambHook().get_tts_results([1, 2])

    assert "API key was rejected" in str(caught.value)
    assert caught.value.status_code == status
    assert requests_mock.call_count == 1, "a rejected key is never retried"
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
    assert API_KEY not in logs()


@pytest.mark.parametrize("status", [400, 404, 409, 418])
def test_other_client_errors_are_not_retried(camb_connection, requests_mock, status):
    requests_mock.get(f"{BASE_URL}/tts/t1", status_code=status, json={"detail": "nope"})
    with pytest.raises(CambAPIError, match="nope"):
        CambHook().get_tts_task_status("t1")
    assert requests_mock.call_count == 1


def test_a_missing_api_key_fails_with_an_error_that_says_so(monkeypatch, requests_mock):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps({"conn_type": "camb", "host": BASE_URL}))
    with pytest.raises(CambConnectionConfigError, match="has no API key"):
        CambHook().get_tts_results([1, 2])
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("extra", [{"timeout": "soon"}, {"timeout": 0}, {"max_retries": -1}])
def test_bad_connection_extras_are_named(monkeypatch, extra):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT", json.dumps({"conn_type": "camb", "password": "k", "extra": extra})
    )
    (name,) = extra
    with pytest.raises(CambConnectionConfigError, match=name):
        CambHook().settings  # noqa: B018


# -- retries -------------------------------------------------------------------------------------


def test_429_with_retry_after_seconds_is_honoured_then_succeeds(
    camb_connection, requests_mock, _instant_retries
):
    requests_mock.post(
        BULK,
        [
            {"status_code": 429, "headers": {"Retry-After": "3"}, "json": {"detail": "slow down"}},
            {"status_code": 429, "headers": {"Retry-After": "1.5"}, "json": {"detail": "slow down"}},
            {"json": bulk_answer()},
        ],
    )
    assert CambHook().get_tts_results([1, 2]) == {1: audio_url(1), 2: audio_url(2)}
    assert _instant_retries == [3.0, 1.5]


def test_retry_after_as_an_http_date_is_honoured_and_capped(camb_connection, requests_mock, _instant_retries):
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    much_later = format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)
    requests_mock.get(
        f"{BASE_URL}/tts/t1",
        [
            {"status_code": 429, "headers": {"Retry-After": soon}},
            {"status_code": 503, "headers": {"Retry-After": much_later}},
            {"json": {"status": "PENDING"}},
        ],
    )
    assert CambHook().get_tts_task_status("t1").status == "PENDING"
    assert 25 <= _instant_retries[0] <= 30
    assert _instant_retries[1] == 120.0


def test_5xx_is_retried_with_growing_backoff_then_raises_a_clear_error(
    camb_connection, requests_mock, _instant_retries
):
    requests_mock.post(BULK, status_code=502, text="Bad Gateway")
    with pytest.raises(CambAPIError) as caught:
        CambHook().get_tts_results([1, 2])
    assert requests_mock.call_count == 4  # max_retries=3 in the connection
    assert caught.value.status_code == 502
    assert "Bad Gateway" in str(caught.value)
    assert len(_instant_retries) == 3
    # exponential (1, 2, 4) plus up to 1 s of jitter
    for attempt, slept in enumerate(_instant_retries):
        assert 2**attempt <= slept <= 2**attempt + 1


def test_a_timeout_is_retried_then_reported_without_a_status(camb_connection, requests_mock):
    requests_mock.get(f"{BASE_URL}/tts/t1", exc=requests.exceptions.ReadTimeout)
    with pytest.raises(CambAPIError) as caught:
        CambHook().get_tts_task_status("t1")
    assert requests_mock.call_count == 4
    assert caught.value.status_code is None
    assert "no answer within 7 s" in str(caught.value)


def test_a_connection_error_then_success_is_invisible_to_the_caller(camb_connection, requests_mock):
    requests_mock.get(
        f"{BASE_URL}/tts/t1",
        [{"exc": requests.exceptions.ConnectionError}, {"json": {"status": "SUCCESS", "run_id": 5}}],
    )
    status = CambHook().get_tts_task_status("t1")
    assert (status.status, status.run_id, status.is_success) == ("SUCCESS", 5, True)


def test_retry_log_lines_name_the_endpoint_but_not_the_signed_url(camb_connection, requests_mock, logs):
    requests_mock.post(BULK, [{"status_code": 500}, {"json": bulk_answer()}])
    CambHook().get_tts_results([1, 2])
    text = logs()
    assert "POST /tts-results: HTTP 500; retry 1 of 3" in text
    assert "Camb.ai run IDs [1, 2]: 2 of 2 audio URLs returned." in text
    assert "X-Amz-Signature" not in text
    assert API_KEY not in text


# -- requests themselves -------------------------------------------------------------------------


def test_every_request_carries_key_user_agent_and_timeout(camb_connection, requests_mock):
    requests_mock.post(BULK, json=bulk_answer())
    requests_mock.get(SINGLE, json=single_answer())
    hook = CambHook()
    hook.get_tts_results([1, 2, 3])
    hook.get_tts_result_url(4)
    for call in requests_mock.request_history:
        assert call.headers["x-api-key"] == API_KEY
        assert call.headers["User-Agent"] == f"airflow-provider-camb/{__version__}"
        assert call.timeout == (7.0, 7.0)


def test_one_session_is_reused_for_keep_alive(camb_connection):
    hook = CambHook()
    assert hook.get_conn() is hook.get_conn()


def test_an_empty_host_means_the_public_api(monkeypatch, requests_mock):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps({"conn_type": "camb", "password": "k"}))
    requests_mock.get(f"{DEFAULT_BASE_URL}/tts/t9", json={"status": "PENDING"})
    assert CambHook().get_tts_task_status("t9").status == "PENDING"


def test_hook_arguments_override_connection_extras(camb_connection, requests_mock):
    requests_mock.get(f"{BASE_URL}/tts/t1", status_code=500)
    with pytest.raises(CambAPIError):
        CambHook(max_retries=0, timeout=2).get_tts_task_status("t1")
    assert requests_mock.call_count == 1
    assert requests_mock.request_history[0].timeout == (2.0, 2.0)


def test_the_key_is_in_no_repr(camb_connection):
    hook = CambHook()
    assert API_KEY not in repr(hook)
    assert API_KEY not in repr(hook.settings)


# -- task status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "terminal", "success"),
    [
        ({"status": "PENDING", "run_id": None}, False, False),
        ({"status": "SUCCESS", "run_id": 77}, True, True),
        ({"status": "ERROR", "exception_reason": "PROCESSING_ERROR", "message": "boom"}, True, False),
        ({"status": "TIMEOUT"}, True, False),
        ({"status": "PAYMENT_REQUIRED", "message": {"credits": 0}}, True, False),
        ({"status": "QUEUED_SOMEWHERE_NEW"}, False, False),
    ],
)
def test_task_status_knows_what_is_terminal(camb_connection, requests_mock, body, terminal, success):
    requests_mock.get(f"{BASE_URL}/tts/task-1", json=body)
    status = CambHook().get_tts_task_status("task-1")
    assert status.status == body["status"]
    assert (status.is_terminal, status.is_success) == (terminal, success)


def test_a_failure_status_carries_reason_and_message(camb_connection, requests_mock):
    requests_mock.get(
        f"{BASE_URL}/tts/t1",
        json={
            "status": "PAYMENT_REQUIRED",
            "exception_reason": "PAYMENT_REQUIRED",
            "message": {"credits": 0},
        },
    )
    status = CambHook().get_tts_task_status("t1")
    assert status.is_failure
    assert (
        status.describe() == 'task t1 is PAYMENT_REQUIRED; reason: PAYMENT_REQUIRED; message: {"credits": 0}'
    )


def test_success_without_a_run_id_is_an_api_error(camb_connection, requests_mock):
    requests_mock.get(f"{BASE_URL}/tts/t1", json={"status": "SUCCESS"})
    with pytest.raises(CambAPIError, match="without a run_id"):
        CambHook().get_tts_task_status("t1")


# -- test_connection -----------------------------------------------------------------------------


def test_test_connection_succeeds_with_a_valid_key(camb_connection, requests_mock):
    requests_mock.get(f"{BASE_URL}/source-languages", json=[{"id": 1, "language": "en-us"}])
    ok, message = CambHook().test_connection()
    assert ok
    assert "1 source languages" in message
    assert requests_mock.request_history[0].method == "GET"


def test_test_connection_reports_a_rejected_key(camb_connection, requests_mock):
    requests_mock.get(f"{BASE_URL}/source-languages", status_code=401, json={"detail": "Invalid API key"})
    ok, message = CambHook().test_connection()
    assert not ok
    assert "rejected the API key" in message
    assert API_KEY not in message


def test_errors_survive_pickling_with_their_facts():
    import pickle

    err = pickle.loads(pickle.dumps(CambAuthError("bad key", status_code=401, endpoint="GET /x")))
    assert (type(err), err.status_code, err.endpoint, str(err)) == (
        CambAuthError,
        401,
        "GET /x",
        "Camb.ai GET /x returned HTTP 401: bad key",
    )
    missing = pickle.loads(pickle.dumps(CambRunsMissingError({1: "u"}, {2: None})))
    assert (missing.urls, missing.missing) == ({1: "u"}, {2: None})
    assert json.dumps(missing.missing)  # JSON-safe for XCom


@pytest.mark.parametrize(
    ("connection", "base_url"),
    [
        ({"host": "client.camb.ai", "schema": "apis"}, "https://client.camb.ai/apis"),
        ({"host": "http://127.0.0.1", "port": 8080, "schema": "apis"}, "http://127.0.0.1:8080/apis"),
        ({"host": "https://proxy.test/camb/apis/"}, "https://proxy.test/camb/apis"),
        ({"host": "http://127.0.0.1:9/apis", "port": 1234}, "http://127.0.0.1:9/apis"),
    ],
)
def test_base_url_is_assembled_from_host_port_and_schema(monkeypatch, connection, base_url):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT", json.dumps({"conn_type": "camb", "password": "k", **connection})
    )
    assert CambHook().settings.base_url == base_url


def test_a_uri_form_connection_keeps_its_api_path(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", "camb://:my-key@client.camb.ai/apis")
    settings = CambHook().settings
    assert (settings.base_url, settings.api_key) == ("https://client.camb.ai/apis", "my-key")


def test_max_retries_must_be_a_whole_number(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps({"conn_type": "camb", "password": "k", "extra": {"max_retries": 2.5}}),
    )
    with pytest.raises(CambConnectionConfigError, match="whole number"):
        CambHook().settings  # noqa: B018


def test_a_task_id_cannot_change_the_url_it_is_asked_at(camb_connection, requests_mock):
    requests_mock.get(f"{BASE_URL}/tts/a%2F..%3Fx%23y", json={"status": "PENDING"})
    assert CambHook().get_tts_task_status("a/..?x#y").status == "PENDING"
    assert requests_mock.request_history[0].path == "/apis/tts/a%2f..%3fx%23y"
