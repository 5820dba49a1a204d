"""CambTTSTaskSensor without a scheduler: poke outcomes, tolerance, deferral, execute_complete."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest.mock import MagicMock

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_camb.exceptions import CambAPIError, CambConnectionConfigError
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.triggers.camb import CambTTSTaskTrigger
from airflow_provider_camb.utils.xcom_keys import RUN_IDS_BY_TASK
from tests.sensors.fakes import (
    ScriptedStatuses,
    pending,
    rejected_key,
    status,
    success,
    unavailable,
    unreachable,
)


def make_sensor(**kwargs: object) -> CambTTSTaskSensor:
    defaults: dict[str, object] = {
        "task_id": "wait_for_tts",
        "camb_task_ids": ["t1", "t2"],
        "poke_interval": 0,
        "timeout": 30,
        "deferrable": False,
    }
    return CambTTSTaskSensor(**{**defaults, **kwargs})  # type: ignore[arg-type]


@pytest.fixture
def context() -> dict[str, MagicMock]:
    ti = MagicMock()
    ti.get_first_reschedule_date.return_value = None
    return {"ti": ti}


def pushed(context: dict[str, MagicMock]) -> dict[str, object]:
    return {call.kwargs["key"]: call.kwargs["value"] for call in context["ti"].xcom_push.call_args_list}


# -- poke: one outcome per status ---------------------------------------------------------------


def test_poke_is_not_done_while_a_task_is_pending(monkeypatch, context):
    ScriptedStatuses({"t1": [success("t1", 11)], "t2": [pending("t2")]}).install(monkeypatch)

    assert make_sensor().poke(context) is False
    assert pushed(context) == {}


def test_poke_returns_run_ids_in_task_order_and_pushes_the_map_when_all_succeed(monkeypatch, context):
    ScriptedStatuses({"t1": [success("t1", 11)], "t2": [success("t2", 7)]}).install(monkeypatch)

    result = make_sensor(camb_task_ids=["t2", "t1"]).poke(context)

    assert isinstance(result, PokeReturnValue)
    assert result.is_done
    assert result.xcom_value == [7, 11]
    assert pushed(context) == {RUN_IDS_BY_TASK: {"t2": 7, "t1": 11}}


@pytest.mark.parametrize("failed_state", ["ERROR", "TIMEOUT", "PAYMENT_REQUIRED"])
def test_poke_fails_at_once_naming_task_status_reason_and_message(monkeypatch, context, failed_state):
    ScriptedStatuses(
        {
            "t1": [pending("t1")],
            "t2": [status("t2", failed_state, exception_reason="SOURCE_TOO_LONG", message="split it")],
        }
    ).install(monkeypatch)

    with pytest.raises(AirflowFailException) as excinfo:
        make_sensor().poke(context)

    assert str(excinfo.value) == (
        f"1 Camb.ai TTS task failed: [task t2 is {failed_state}; reason: SOURCE_TOO_LONG; message: split it]"
    )


def test_poke_waits_on_an_unknown_status_and_logs_it(monkeypatch, context, capsys):
    ScriptedStatuses({"t1": [status("t1", "QUEUED_FOR_GPU")], "t2": [success("t2", 7)]}).install(monkeypatch)

    assert make_sensor().poke(context) is False

    # Airflow's structlog writes task logs to stdout.
    assert "Unknown Camb.ai task status, waiting on it: task t1 is QUEUED_FOR_GPU" in capsys.readouterr().out


# -- soft_fail -------------------------------------------------------------------------------------


def test_failed_task_skips_the_sensor_with_soft_fail(monkeypatch, context):
    ScriptedStatuses({"t1": [status("t1", "ERROR")], "t2": [pending("t2")]}).install(monkeypatch)

    with pytest.raises(AirflowSkipException):
        make_sensor(soft_fail=True).execute(context)


def test_failed_task_fails_the_sensor_without_soft_fail(monkeypatch, context):
    ScriptedStatuses({"t1": [status("t1", "ERROR")], "t2": [pending("t2")]}).install(monkeypatch)

    with pytest.raises(AirflowFailException, match="task t1 is ERROR"):
        make_sensor().execute(context)


# -- poke mode: only unfinished tasks are asked, errors counted across pokes ----------------------------


def test_poke_mode_asks_only_about_unfinished_tasks(monkeypatch, context):
    statuses = ScriptedStatuses(
        {"t1": [success("t1", 11)], "t2": [pending("t2"), pending("t2"), success("t2", 12)]}
    ).install(monkeypatch)

    assert make_sensor().execute(context) == [11, 12]

    assert statuses.calls_per_task == {"t1": 1, "t2": 3}
    assert pushed(context) == {RUN_IDS_BY_TASK: {"t1": 11, "t2": 12}}


def test_transient_errors_are_tolerated_up_to_max_consecutive_errors(monkeypatch, context):
    statuses = ScriptedStatuses(
        {"t1": [unavailable(), unreachable(), unavailable(), success("t1", 11)], "t2": [success("t2", 12)]}
    ).install(monkeypatch)

    assert make_sensor(max_consecutive_errors=3).execute(context) == [11, 12]
    assert statuses.calls_per_task["t1"] == 4


def test_transient_errors_beyond_max_consecutive_errors_fail_the_sensor_retryably(monkeypatch, context):
    ScriptedStatuses({"t1": [unavailable()], "t2": [success("t2", 12)]}).install(monkeypatch)

    # Not AirflowFailException: the API being down is worth Airflow's own retries.
    with pytest.raises(CambAPIError) as excinfo:
        make_sensor(max_consecutive_errors=2).execute(context)

    assert excinfo.value.status_code == 503
    assert str(excinfo.value) == (
        "Camb.ai GET /tts/{task_id} returned HTTP 503: 3 polls of the task statuses failed in a row "
        "(more than max_consecutive_errors=2); last answer: service unavailable"
    )


def test_soft_fail_does_not_turn_an_api_outage_into_a_skip(monkeypatch, context):
    ScriptedStatuses({"t1": [unreachable()]}).install(monkeypatch)

    with pytest.raises(CambAPIError, match="failed in a row"):
        make_sensor(camb_task_ids="t1", max_consecutive_errors=1, soft_fail=True).execute(context)


def test_a_good_poke_resets_the_count_of_failed_pokes(monkeypatch, context):
    script = [unavailable(), unavailable(), pending("t1"), unavailable(), unavailable(), success("t1", 11)]
    ScriptedStatuses({"t1": script}).install(monkeypatch)

    assert make_sensor(camb_task_ids="t1", max_consecutive_errors=2).execute(context) == [11]


def test_max_consecutive_errors_zero_fails_at_the_first_failed_poke(monkeypatch, context):
    ScriptedStatuses({"t1": [unreachable(), success("t1", 11)]}).install(monkeypatch)

    with pytest.raises(CambAPIError, match="1 polls of the task statuses failed in a row"):
        make_sensor(camb_task_ids="t1", max_consecutive_errors=0).execute(context)


def test_rejected_api_key_fails_at_once_without_polling_again(monkeypatch, context):
    statuses = ScriptedStatuses({"t1": [rejected_key(), success("t1", 11)]}).install(monkeypatch)

    with pytest.raises(AirflowFailException) as excinfo:
        make_sensor(camb_task_ids="t1", max_consecutive_errors=5).execute(context)

    assert str(excinfo.value) == (
        "Cannot wait on Camb.ai TTS tasks: Camb.ai GET /tts/{task_id} returned HTTP 401: "
        "the API key was rejected"
    )
    assert statuses.calls == ["t1"]


def test_unknown_task_id_answered_404_fails_at_once(monkeypatch, context):
    not_found = CambAPIError("Task not found", status_code=404, endpoint="GET /tts/{task_id}")
    ScriptedStatuses({"t1": [not_found]}).install(monkeypatch)

    with pytest.raises(AirflowFailException, match="HTTP 404: Task not found"):
        make_sensor(camb_task_ids="t1").execute(context)


def test_connection_without_api_key_fails_at_once(monkeypatch, context):
    def no_key(_hook: object, _task_id: str, kind: object = "tts") -> None:
        raise CambConnectionConfigError("The Camb.ai connection 'camb_default' has no API key")

    monkeypatch.setattr("airflow_provider_camb.hooks.camb.CambHook.get_task_status", no_key)

    with pytest.raises(AirflowFailException, match="has no API key"):
        make_sensor(camb_task_ids="t1").execute(context)


def test_sensor_times_out_while_tasks_stay_pending(monkeypatch, context):
    ScriptedStatuses({"t1": [pending("t1")]}).install(monkeypatch)

    with pytest.raises(AirflowSensorTimeout):
        make_sensor(camb_task_ids="t1", poke_interval=0.01, timeout=0.05).execute(context)


# -- reschedule mode: nothing carried between tries ------------------------------------------------------


def test_reschedule_mode_keeps_no_progress_between_pokes(monkeypatch, context):
    statuses = ScriptedStatuses(
        {"t1": [success("t1", 11)], "t2": [pending("t2"), success("t2", 12)]}
    ).install(monkeypatch)
    sensor = make_sensor(mode="reschedule", poke_interval=60)

    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context)
    # The next try runs on the same instance here; it must ask about t1 again, not trust memory.
    assert sensor.execute(context) == [11, 12]

    assert statuses.calls_per_task == {"t1": 2, "t2": 2}


def test_reschedule_mode_waits_for_the_next_poke_after_a_failed_poll(monkeypatch, context):
    ScriptedStatuses({"t1": [unavailable()]}).install(monkeypatch)

    with pytest.raises(AirflowRescheduleException):
        make_sensor(camb_task_ids="t1", mode="reschedule", poke_interval=60).execute(context)


# -- camb_task_ids as rendered ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("t1", [11]),
        (["t1", "t2", "t1"], [11, 12]),
        (("t2", "t1"), [12, 11]),
        ("['t1', 't2']", [11, 12]),
        ('["t2", "t1"]', [12, 11]),
        ("t1, t2", [11, 12]),
    ],
)
def test_task_ids_accept_one_id_a_list_or_a_rendered_list(monkeypatch, context, rendered, expected):
    ScriptedStatuses({"t1": [success("t1", 11)], "t2": [success("t2", 12)]}).install(monkeypatch)

    assert make_sensor(camb_task_ids=rendered).execute(context) == expected


@pytest.mark.parametrize(
    ("rendered", "message"),
    [
        ([], "No Camb.ai task IDs were given"),
        ("", "No Camb.ai task IDs were given"),
        (["t1", 7, ""], "Camb.ai task IDs must be non-empty strings; invalid: 7, ''"),
        (["../admin"], "invalid: '../admin'"),
        ({"t1": 1}, "camb_task_ids must be a Camb.ai task ID or a list of them, got dict"),
        (None, "got NoneType"),
    ],
)
def test_invalid_task_ids_fail_before_any_request(monkeypatch, context, rendered, message):
    statuses = ScriptedStatuses({}).install(monkeypatch)

    with pytest.raises(AirflowFailException, match=message.replace("(", r"\(").replace(".", r"\.")):
        make_sensor(camb_task_ids=rendered).execute(context)
    assert statuses.calls == []


def test_constructor_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="max_consecutive_errors must be 0 or more"):
        make_sensor(max_consecutive_errors=-1)


def test_poll_interval_defaults_to_poke_interval():
    assert make_sensor(poke_interval=42).poll_interval == 42
    assert make_sensor(poke_interval=42, poll_interval=5).poll_interval == 5


def test_camb_task_ids_is_templated():
    assert "camb_task_ids" in CambTTSTaskSensor.template_fields


# -- deferrable ---------------------------------------------------------------------------------------


def test_deferrable_sensor_defers_with_a_wall_clock_deadline_and_the_run_ids_it_already_has(
    monkeypatch, context
):
    ScriptedStatuses({"t1": [success("t1", 11)], "t2": [pending("t2")]}).install(monkeypatch)
    sensor = make_sensor(
        deferrable=True, timeout=600, poke_interval=5, poll_interval=2, camb_conn_id="camb_x"
    )

    before = time.time()
    with pytest.raises(TaskDeferred) as excinfo:
        sensor.execute(context)

    deferred = excinfo.value
    assert deferred.method_name == "execute_complete"
    # The trigger's deadline ends the wait with a useful event; the scheduler's is a backstop.
    assert deferred.timeout == timedelta(seconds=660)
    trigger = deferred.trigger
    assert isinstance(trigger, CambTTSTaskTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_camb.triggers.camb.CambTTSTaskTrigger"
    end_time = kwargs.pop("end_time")
    assert before + 600 <= end_time <= time.time() + 600
    # No double poll: the sensor's check was the first, the trigger's comes one interval later.
    first_poll_at = kwargs.pop("first_poll_at")
    assert before + 2 <= first_poll_at <= time.time() + 2
    assert kwargs == {
        "camb_task_ids": ["t1", "t2"],
        "camb_conn_id": "camb_x",
        "poll_interval": 2.0,
        "max_consecutive_errors": 3,
        "run_ids_by_task": {"t1": 11},
        "max_concurrent_requests": 8,
        "result_kind": "tts",
    }


def test_deferrable_sensor_returns_at_once_when_all_tasks_already_succeeded(monkeypatch, context):
    ScriptedStatuses({"t1": [success("t1", 11)], "t2": [success("t2", 12)]}).install(monkeypatch)

    assert make_sensor(deferrable=True).execute(context) == [11, 12]
    assert pushed(context) == {RUN_IDS_BY_TASK: {"t1": 11, "t2": 12}}


def test_deferrable_sensor_fails_at_the_first_check_when_a_task_failed(monkeypatch, context):
    ScriptedStatuses({"t1": [status("t1", "PAYMENT_REQUIRED")], "t2": [pending("t2")]}).install(monkeypatch)

    with pytest.raises(AirflowFailException, match="task t1 is PAYMENT_REQUIRED"):
        make_sensor(deferrable=True).execute(context)


def test_deferrable_sensor_with_soft_fail_skips_when_a_task_failed_at_the_first_check(monkeypatch, context):
    ScriptedStatuses({"t1": [status("t1", "ERROR")], "t2": [pending("t2")]}).install(monkeypatch)

    with pytest.raises(AirflowSkipException, match="task t1 is ERROR"):
        make_sensor(deferrable=True, soft_fail=True).execute(context)


def test_deferrable_sensor_defers_after_a_failed_first_check_leaving_the_rest_to_the_trigger(
    monkeypatch, context
):
    statuses = ScriptedStatuses({"t1": [unavailable()], "t2": [success("t2", 12)]})
    statuses.install(monkeypatch)

    with pytest.raises(TaskDeferred) as excinfo:
        make_sensor(deferrable=True, max_concurrent_requests=1).execute(context)

    # The outage stopped the check early: t2 was not asked, the trigger will ask it.
    assert excinfo.value.trigger.run_ids_by_task == {}
    assert excinfo.value.trigger.camb_task_ids == ["t1", "t2"]


# -- execute_complete ---------------------------------------------------------------------------------


def test_execute_complete_returns_run_ids_from_the_event_in_task_order(context):
    event = {"status": "success", "camb_task_ids": ["t1", "t2"], "run_ids_by_task": {"t2": 12, "t1": 11}}

    assert make_sensor().execute_complete(context, event) == [11, 12]
    assert pushed(context) == {RUN_IDS_BY_TASK: {"t1": 11, "t2": 12}}


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        (None, AirflowFailException, r"resumed without a trigger event \(got None\)"),
        ({"status": "done"}, AirflowFailException, "unknown status 'done'; expected one of"),
        ({}, AirflowFailException, "unknown status None"),
        (
            {"status": "success", "run_ids_by_task": {"t1": 11}},
            AirflowFailException,
            "without a run ID for 1 requested Camb.ai task\\(s\\): t2",
        ),
        ({"status": "success"}, AirflowFailException, "has no run_ids_by_task map"),
        (
            {"status": "success", "run_ids_by_task": {"t1": 11, "t2": "12"}},
            AirflowFailException,
            "invalid run IDs: t2='12'",
        ),
        (
            {
                "status": "error",
                "message": "1 Camb.ai TTS task failed: [task t1 is ERROR]",
                "failed_tasks": [{}],
            },
            AirflowFailException,
            "task t1 is ERROR",
        ),
        ({"status": "error", "message": "HTTP 401", "retryable": False}, AirflowFailException, "HTTP 401"),
        ({"status": "timeout", "message": "t2 still pending"}, AirflowSensorTimeout, "t2 still pending"),
    ],
)
def test_execute_complete_rejects_bad_events_with_a_clear_error(context, event, error, message):
    with pytest.raises(error, match=message):
        make_sensor().execute_complete(context, event)
    assert pushed(context) == {}


def test_execute_complete_raises_the_api_error_when_polls_kept_failing(context):
    event = {
        "status": "error",
        "message": "Camb.ai GET /tts/{task_id} returned HTTP 503: 4 polls ...",
        "retryable": True,
        "api_error": {"message": "4 polls ...", "status_code": 503, "endpoint": "GET /tts/{task_id}"},
    }

    with pytest.raises(CambAPIError) as excinfo:
        make_sensor().execute_complete(context, event)

    assert str(excinfo.value) == "Camb.ai GET /tts/{task_id} returned HTTP 503: 4 polls ..."
    assert excinfo.value.status_code == 503


def test_execute_complete_raises_a_retryable_error_for_other_retryable_events(context):
    event = {"status": "error", "message": "Could not read the Camb.ai connection", "retryable": True}

    with pytest.raises(AirflowException, match="Could not read the Camb") as excinfo:
        make_sensor().execute_complete(context, event)
    assert not isinstance(excinfo.value, AirflowFailException)
