"""CambBulkTTSResultsOperator without a scheduler: input forms, XCom, failures, logs (requests_mock)."""

from __future__ import annotations

import math
import re
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_camb.exceptions import CambAPIError, CambRunsMissingError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.utils.xcom_keys import DELIVERED_URLS, MISSING_RUN_IDS
from tests.camb_api_fakes import BASE_URL, BULK, SINGLE, audio_url, bulk_answer, single_answer
from tests.operators.conftest import pushed


@pytest.fixture
def api(requests_mock: Any, camb_connection: None) -> Any:
    """requests_mock answering both result endpoints; IDs in ``leave_out`` are missing."""
    requests_mock.post(BULK, json=bulk_answer())
    requests_mock.get(SINGLE, json=single_answer({404404: "Run ID 404404 is not a valid TTS run"}))
    return requests_mock


def make_op(**kwargs: Any) -> CambBulkTTSResultsOperator:
    return CambBulkTTSResultsOperator(task_id="bulk_results", **kwargs)


def warning_lines(capsys: pytest.CaptureFixture[str]) -> str:
    """Task logs go through Airflow's structlog to stdout (caplog does not see them)."""
    return "\n".join(line for line in capsys.readouterr().out.splitlines() if "[warning" in line)


def bulk_bodies(requests_mock: Any) -> list[list[int]]:
    return [call.json()["run_ids"] for call in requests_mock.request_history if call.method == "POST"]


# -- construction ---------------------------------------------------------------------------------


def test_only_run_ids_is_templated():
    assert CambBulkTTSResultsOperator.template_fields == ("run_ids",)


def test_construction_reads_no_connection_and_sends_nothing(requests_mock):
    # No AIRFLOW_CONN_ variable exists: building the hook or reading a connection here would raise.
    op = make_op(run_ids=[1, 2], camb_conn_id="does_not_exist")

    assert "hook" not in op.__dict__
    assert requests_mock.call_count == 0
    assert (op.camb_conn_id, op.fail_on_missing) == ("does_not_exist", True)


def test_hook_is_built_once_from_the_connection_id():
    op = make_op(run_ids=[1, 2], camb_conn_id="camb_other")

    assert isinstance(op.hook, CambHook)
    assert op.hook is op.hook
    assert op.hook.camb_conn_id == "camb_other"


# -- input forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "run_ids",
    [
        [11, 12, 13],
        (11, 12, 13),
        ["11", "12", " 13 "],
        [11, "12", 13],
        "[11, 12, 13]",
        "['11', '12', '13']",
        "11,12,13",
        "11, 12, 13",
        "11 12 13",
        [[11, 12], [13]],
    ],
    ids=repr,
)
def test_every_accepted_input_form_yields_the_same_map(api, context, run_ids):
    result = make_op(run_ids=run_ids).execute(context)

    assert result == {"11": audio_url(11), "12": audio_url(12), "13": audio_url(13)}
    assert bulk_bodies(api) == [[11, 12, 13]]
    assert pushed(context) == []


@pytest.mark.parametrize("run_ids", [7, "7", [7], "[7]"], ids=repr)
def test_a_single_run_id_uses_the_single_run_endpoint(api, context, run_ids):
    assert make_op(run_ids=run_ids).execute(context) == {"7": audio_url(7)}
    assert [(call.method, call.path) for call in api.request_history] == [("GET", "/apis/tts-result/7")]


def test_return_value_has_string_keys_in_input_order_without_duplicates(api, context):
    result = make_op(run_ids=[905, 3, "905", 41, 3, 7]).execute(context)

    assert list(result) == ["905", "3", "41", "7"]
    assert all(isinstance(key, str) for key in result)


def test_both_answer_shapes_give_plain_url_strings(api, context):
    api.post(BULK, json={"1": audio_url(1), "2": {"output_url": audio_url(2)}})

    assert make_op(run_ids=[1, 2]).execute(context) == {"1": audio_url(1), "2": audio_url(2)}


@pytest.mark.parametrize("count", [2, 5, 6, 7, 11, 23])
def test_n_ids_go_in_ceil_n_over_5_bulk_calls_of_2_to_5_unique_ids(api, context, count):
    run_ids = list(range(500, 500 + count))

    result = make_op(run_ids=run_ids).execute(context)

    bodies = bulk_bodies(api)
    assert len(bodies) == math.ceil(count / 5) == api.call_count
    for body in bodies:
        assert 2 <= len(body) <= 5
        assert len(set(body)) == len(body)
    assert [run_id for body in bodies for run_id in body] == run_ids
    assert list(result) == [str(run_id) for run_id in run_ids]


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_ids", "named"),
    [
        ([1, True, 3], ["True"]),
        ([4, -2, 0, 2.5], ["-2", "0", "2.5"]),
        (["12", "abc", "1e3", None], ["'abc'", "'1e3'", "None"]),
        ("1, two, 3", ["'two'"]),
        ([], ["No Camb.ai run IDs were given"]),
        ("", ["No Camb.ai run IDs were given"]),
        (None, ["None"]),
        ({"1": "a"}, ["dict"]),
        (False, ["False"]),
    ],
    ids=repr,
)
def test_bad_input_fails_without_retry_naming_each_bad_value_before_any_request(
    requests_mock, context, run_ids, named
):
    # No connection is configured either: bad input is reported before the connection is read.
    with pytest.raises(AirflowFailException) as caught:
        make_op(run_ids=run_ids).execute(context)

    message = str(caught.value)
    assert message.startswith("Invalid run_ids: ")
    for value in named:
        assert value in message
    assert requests_mock.call_count == 0
    assert pushed(context) == []


def test_bad_input_message_reads_well():
    with pytest.raises(AirflowFailException, match=r"^Invalid run_ids: .*invalid: True, -3, 'x'$"):
        make_op(run_ids=[1, True, -3, "x"]).execute({"ti": None})  # type: ignore[arg-type]


# -- missing runs ---------------------------------------------------------------------------------


def test_missing_runs_push_what_arrived_then_fail_naming_every_missing_id_and_reason(api, context):
    api.post(BULK, json=bulk_answer(leave_out=frozenset({3, 6})))

    with pytest.raises(CambRunsMissingError) as caught:
        make_op(run_ids=[1, 2, 3, 4, 5, 6, 7]).execute(context)

    assert str(caught.value) == (
        "Camb.ai returned no audio URL for 2 of 7 run IDs: "
        "3 (left out of the POST /tts-results answer); 6 (left out of the POST /tts-results answer)"
    )
    assert pushed(context) == [
        (DELIVERED_URLS, {str(i): audio_url(i) for i in (1, 2, 4, 5, 7)}),
        (
            MISSING_RUN_IDS,
            {
                "3": "left out of the POST /tts-results answer",
                "6": "left out of the POST /tts-results answer",
            },
        ),
    ]


def test_missing_runs_fail_in_a_way_the_tasks_retries_can_cover(api, context):
    # A run that has not finished yet looks exactly like an unknown one, and it can appear later.
    api.post(BULK, json=bulk_answer(leave_out=frozenset({2})))

    with pytest.raises(CambRunsMissingError) as caught:
        make_op(run_ids=[1, 2]).execute(context)

    assert not isinstance(caught.value, AirflowFailException)


def test_a_lone_missing_id_is_named_with_the_apis_reason(api, context):
    with pytest.raises(CambRunsMissingError, match=r"404404 \(Run ID 404404 is not a valid TTS run\)"):
        make_op(run_ids=[404404]).execute(context)

    assert pushed(context) == [
        (DELIVERED_URLS, {}),
        (MISSING_RUN_IDS, {"404404": "Run ID 404404 is not a valid TTS run"}),
    ]


def test_without_fail_on_missing_it_warns_pushes_the_missing_ids_and_returns_the_rest(api, context, capsys):
    api.post(BULK, json=bulk_answer(leave_out=frozenset({2})))

    result = make_op(run_ids=[1, 2, 3], fail_on_missing=False).execute(context)

    assert result == {"1": audio_url(1), "3": audio_url(3)}
    assert pushed(context) == [(MISSING_RUN_IDS, {"2": "left out of the POST /tts-results answer"})]
    assert (
        "Camb.ai returned no audio URL for 1 of 3 run IDs: 2 (left out of the POST /tts-results answer). "
        "Returning the 2 that arrived; the missing ones are in XCom 'camb_missing_run_ids'."
    ) in warning_lines(capsys)


def test_without_fail_on_missing_nothing_delivered_is_an_empty_map(api, context):
    api.post(BULK, json={})

    assert make_op(run_ids=[1, 2], fail_on_missing=False).execute(context) == {}
    assert [key for key, _ in pushed(context)] == [MISSING_RUN_IDS]


# -- other errors ---------------------------------------------------------------------------------


def test_a_rejected_api_key_fails_without_retry(api, context):
    api.post(BULK, status_code=401, json={"detail": "Invalid API key"})

    with pytest.raises(AirflowFailException, match="the API key was rejected"):
        make_op(run_ids=[1, 2]).execute(context)


def test_a_connection_without_api_key_fails_without_retry(monkeypatch, requests_mock, context):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", '{"conn_type": "camb", "host": "https://camb.test"}')

    with pytest.raises(AirflowFailException, match="has no API key"):
        make_op(run_ids=[1, 2]).execute(context)
    assert requests_mock.call_count == 0


def test_a_service_outage_stays_retryable_for_airflow(api, context):
    api.post(BULK, status_code=503, text="upstream unavailable")

    with pytest.raises(CambAPIError) as caught:
        make_op(run_ids=[1, 2]).execute(context)

    assert caught.value.status_code == 503
    assert not isinstance(caught.value, AirflowFailException)


# -- logs -----------------------------------------------------------------------------------------


def test_one_log_line_per_chunk_and_no_signed_url_in_the_logs(api, context, capsys):
    make_op(run_ids=list(range(1, 8))).execute(context)

    out = capsys.readouterr().out
    assert "Fetching audio URLs for 7 Camb.ai run IDs in 2 request(s)." in out
    assert re.findall(r"Camb\.ai run IDs \[.*?\]: .*? returned\.", out) == [
        "Camb.ai run IDs [1, 2, 3, 4]: 4 of 4 audio URLs returned.",
        "Camb.ai run IDs [5, 6, 7]: 3 of 3 audio URLs returned.",
    ]
    assert "Received audio URLs for all 7 Camb.ai run IDs." in out
    assert "storage.test" not in out
    assert "Signature" not in out
    assert "secret" not in out


# -- any kind ------------------------------------------------------------------------------------


def test_the_generic_operator_fetches_any_kind_into_xcom(camb_connection, requests_mock):
    from airflow_provider_camb.operators.camb import CambBulkResultsOperator

    requests_mock.post(
        f"{BASE_URL}/translation-results",
        json=lambda request, context: {str(i): {"texts": [f"text {i}"]} for i in request.json()["run_ids"]},
    )
    operator = CambBulkResultsOperator(task_id="t", result_kind="translation", run_ids=[3, 4, 5])

    assert operator.execute({"ti": mock.MagicMock()}) == {  # type: ignore[arg-type]
        "3": ["text 3"],
        "4": ["text 4"],
        "5": ["text 5"],
    }


def test_an_unknown_result_kind_is_refused_when_the_dag_is_parsed():
    from airflow_provider_camb.operators.camb import CambBulkResultsOperator

    with pytest.raises(ValueError, match="CambBulkResultsOperator: result_kind must be one of"):
        CambBulkResultsOperator(task_id="t", result_kind="karaoke", run_ids=[1])
