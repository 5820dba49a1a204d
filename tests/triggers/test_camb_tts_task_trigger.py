"""CambTTSTaskTrigger on its own: serialisation, and the one event each outcome yields."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.triggers.camb import CambTTSTaskTrigger
from tests.sensors.fakes import (
    ScriptedStatuses,
    pending,
    rejected_key,
    set_camb_connection,
    status,
    success,
    unavailable,
    unreachable,
)


def make_trigger(**kwargs: Any) -> CambTTSTaskTrigger:
    defaults: dict[str, Any] = {"camb_task_ids": ["t1", "t2"], "poll_interval": 0.01}
    return CambTTSTaskTrigger(**{**defaults, **kwargs})


def events_of(trigger: CambTTSTaskTrigger) -> list[dict[str, Any]]:
    """Run the trigger to its end, the way the triggerer would, and collect every event."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=20))


@pytest.fixture(autouse=True)
def _camb_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_camb_connection(monkeypatch)


def test_serialize_round_trips_through_json_primitives():
    trigger = make_trigger(
        camb_conn_id="camb_x",
        poll_interval=5,
        end_time=1_900_000_000.5,
        max_consecutive_errors=4,
        run_ids_by_task={"t1": 11},
        max_concurrent_requests=2,
    )

    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_camb.triggers.camb.CambTTSTaskTrigger"
    assert kwargs == {
        "camb_task_ids": ["t1", "t2"],
        "camb_conn_id": "camb_x",
        "poll_interval": 5.0,
        "end_time": 1_900_000_000.5,
        "max_consecutive_errors": 4,
        "run_ids_by_task": {"t1": 11},
        "max_concurrent_requests": 2,
    }
    assert CambTTSTaskTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_trigger_serialised_by_an_older_release_still_loads_with_defaults():
    trigger = CambTTSTaskTrigger(camb_task_ids=["t1"])

    assert trigger.serialize()[1] == {
        "camb_task_ids": ["t1"],
        "camb_conn_id": "camb_default",
        "poll_interval": 30.0,
        "end_time": None,
        "max_consecutive_errors": 3,
        "run_ids_by_task": {},
        "max_concurrent_requests": 8,
    }


def test_success_event_carries_every_run_id_after_pending_polls(monkeypatch):
    statuses = ScriptedStatuses(
        {"t1": [pending("t1"), success("t1", 11)], "t2": [pending("t2"), pending("t2"), success("t2", 12)]}
    ).install(monkeypatch)

    assert events_of(make_trigger()) == [
        {"status": "success", "camb_task_ids": ["t1", "t2"], "run_ids_by_task": {"t1": 11, "t2": 12}}
    ]
    # A task that succeeded is not asked about again.
    assert statuses.calls_per_task == {"t1": 2, "t2": 3}


def test_run_ids_already_known_are_not_asked_again_and_come_back_in_the_event(monkeypatch):
    statuses = ScriptedStatuses({"t2": [success("t2", 12)]}).install(monkeypatch)

    (event,) = events_of(make_trigger(run_ids_by_task={"t1": 11}))

    assert event["run_ids_by_task"] == {"t1": 11, "t2": 12}
    assert statuses.calls == ["t2"]


@pytest.mark.parametrize("failed_state", ["ERROR", "TIMEOUT", "PAYMENT_REQUIRED"])
def test_failed_task_yields_one_error_event_with_its_details(monkeypatch, failed_state):
    ScriptedStatuses(
        {
            "t1": [pending("t1")],
            "t2": [status("t2", failed_state, exception_reason="PAYMENT_REQUIRED", message="no credits")],
        }
    ).install(monkeypatch)

    assert events_of(make_trigger()) == [
        {
            "status": "error",
            "retryable": False,
            "message": (
                f"1 Camb.ai TTS task failed: [task t2 is {failed_state}; reason: PAYMENT_REQUIRED; "
                "message: no credits]"
            ),
            "failed_tasks": [
                {
                    "task_id": "t2",
                    "status": failed_state,
                    "exception_reason": "PAYMENT_REQUIRED",
                    "message": "no credits",
                }
            ],
        }
    ]


def test_deadline_yields_a_timeout_event_naming_the_unfinished_tasks(monkeypatch):
    ScriptedStatuses({"t1": [success("t1", 11)], "t2": [pending("t2")]}).install(monkeypatch)

    started = time.monotonic()
    events = events_of(make_trigger(poll_interval=0.05, end_time=time.time() + 0.3))

    assert events == [
        {
            "status": "timeout",
            "message": "1 of 2 Camb.ai TTS tasks were still unfinished at the deadline: t2",
            "pending_task_ids": ["t2"],
            "run_ids_by_task": {"t1": 11},
        }
    ]
    assert time.monotonic() - started < 5


def test_a_long_poll_interval_does_not_sleep_past_the_deadline(monkeypatch):
    statuses = ScriptedStatuses({"t1": [pending("t1")]}).install(monkeypatch)

    started = time.monotonic()
    (event,) = events_of(make_trigger(camb_task_ids=["t1"], poll_interval=3600, end_time=time.time() + 0.2))

    assert event["status"] == "timeout"
    assert time.monotonic() - started < 5
    # One poll at the start, one last poll at the deadline.
    assert statuses.calls == ["t1", "t1"]


def test_unknown_status_is_waited_on(monkeypatch):
    ScriptedStatuses({"t1": [status("t1", "QUEUED"), success("t1", 11)]}).install(monkeypatch)

    assert events_of(make_trigger(camb_task_ids=["t1"]))[0]["status"] == "success"


def test_transient_errors_are_tolerated_up_to_max_consecutive_errors(monkeypatch):
    ScriptedStatuses({"t1": [unavailable(), unreachable(), success("t1", 11)]}).install(monkeypatch)

    (event,) = events_of(make_trigger(camb_task_ids=["t1"], max_consecutive_errors=2))

    assert event == {"status": "success", "camb_task_ids": ["t1"], "run_ids_by_task": {"t1": 11}}


def test_too_many_failed_polls_in_a_row_yield_a_retryable_error_event(monkeypatch):
    ScriptedStatuses({"t1": [unavailable()]}).install(monkeypatch)

    assert events_of(make_trigger(camb_task_ids=["t1"], max_consecutive_errors=2)) == [
        {
            "status": "error",
            "retryable": True,
            "message": (
                "Camb.ai GET /tts/{task_id} returned HTTP 503: 3 polls of the task statuses failed in "
                "a row (more than max_consecutive_errors=2); last answer: service unavailable"
            ),
            "api_error": {
                "message": (
                    "3 polls of the task statuses failed in a row (more than max_consecutive_errors=2); "
                    "last answer: service unavailable"
                ),
                "status_code": 503,
                "endpoint": "GET /tts/{task_id}",
            },
        }
    ]


def test_rejected_api_key_yields_a_final_error_event_at_once(monkeypatch):
    statuses = ScriptedStatuses({"t1": [rejected_key(), success("t1", 11)]}).install(monkeypatch)

    assert events_of(make_trigger(camb_task_ids=["t1"])) == [
        {
            "status": "error",
            "retryable": False,
            "message": "Camb.ai GET /tts/{task_id} returned HTTP 401: the API key was rejected",
        }
    ]
    assert statuses.calls == ["t1"]


def test_missing_connection_yields_an_error_event(monkeypatch):
    ScriptedStatuses({"t1": [success("t1", 11)]}).install(monkeypatch)

    (event,) = events_of(make_trigger(camb_task_ids=["t1"], camb_conn_id="does_not_exist"))

    assert event["status"] == "error"
    assert "Could not read the Camb.ai connection 'does_not_exist'" in event["message"]


def test_connection_without_api_key_yields_a_final_error_event(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", '{"conn_type": "camb", "host": "https://camb.test"}')

    (event,) = events_of(make_trigger(camb_task_ids=["t1"]))

    assert event["status"] == "error"
    assert event["retryable"] is False
    assert "has no API key" in event["message"]


def test_status_calls_run_off_the_event_loop(monkeypatch):
    loop_threads: list[bool] = []

    def get_status(_hook: CambHook, task_id: str) -> Any:
        try:
            asyncio.get_running_loop()
            loop_threads.append(True)
        except RuntimeError:
            loop_threads.append(False)
        return success(task_id, 11)

    monkeypatch.setattr(CambHook, "get_tts_task_status", get_status)

    events_of(make_trigger(camb_task_ids=["t1"]))

    assert loop_threads == [False]


def test_many_tasks_are_polled_with_bounded_concurrency(monkeypatch):
    import threading

    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def get_status(_hook: CambHook, task_id: str) -> Any:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.005)
        with lock:
            in_flight -= 1
        return success(task_id, int(task_id[1:]) + 1)

    monkeypatch.setattr(CambHook, "get_tts_task_status", get_status)
    ids = [f"t{n}" for n in range(300)]

    (event,) = events_of(make_trigger(camb_task_ids=ids, max_concurrent_requests=4))

    assert list(event["run_ids_by_task"]) == ids
    assert 1 < peak <= 4
