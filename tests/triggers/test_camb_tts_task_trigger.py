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
        first_poll_at=1_800_000_000.25,
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
        "first_poll_at": 1_800_000_000.25,
        "result_kind": "tts",
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
        "first_poll_at": None,
        "result_kind": "tts",
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


def test_status_calls_run_on_the_event_loop_never_in_a_thread(monkeypatch):
    import threading

    seen: list[tuple[bool, bool]] = []

    async def aget_status(_hook: CambHook, task_id: str, kind: object = "tts") -> Any:
        asyncio.get_running_loop()  # raises outside a loop
        seen.append((threading.current_thread() is threading.main_thread(), True))
        return success(task_id, 11)

    def blocking(_hook: CambHook, task_id: str, kind: object = "tts") -> Any:
        raise AssertionError("the blocking hook call must not be used by the trigger")

    monkeypatch.setattr(CambHook, "aget_task_status", aget_status)
    monkeypatch.setattr(CambHook, "get_task_status", blocking)
    monkeypatch.setattr(asyncio, "to_thread", blocking)

    events_of(make_trigger(camb_task_ids=["t1"]))

    assert seen == [(True, True)]


def test_many_tasks_are_polled_with_bounded_concurrency(monkeypatch):
    in_flight = 0
    peak = 0

    async def aget_status(_hook: CambHook, task_id: str, kind: object = "tts") -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return success(task_id, int(task_id[1:]) + 1)

    monkeypatch.setattr(CambHook, "aget_task_status", aget_status)
    ids = [f"t{n}" for n in range(300)]

    (event,) = events_of(make_trigger(camb_task_ids=ids, max_concurrent_requests=4))

    assert list(event["run_ids_by_task"]) == ids
    assert peak == 4


def test_the_first_poll_waits_until_first_poll_at(monkeypatch):
    asked: list[float] = []

    async def aget_status(_hook: CambHook, task_id: str, kind: object = "tts") -> Any:
        asked.append(time.time())
        return success(task_id, 11)

    monkeypatch.setattr(CambHook, "aget_task_status", aget_status)
    start = time.time()

    events_of(make_trigger(camb_task_ids=["t1"], first_poll_at=start + 0.3))

    assert len(asked) == 1
    assert asked[0] >= start + 0.29  # not at once: the sensor has just asked


def test_an_outage_stops_a_poll_of_many_tasks_at_its_first_failed_request(monkeypatch):
    statuses = ScriptedStatuses({f"t{n}": [unavailable()] for n in range(1000)}).install(monkeypatch)

    (event,) = events_of(
        make_trigger(
            camb_task_ids=[f"t{n}" for n in range(1000)], max_consecutive_errors=2, max_concurrent_requests=8
        )
    )

    assert event["status"] == "error" and event["retryable"] is True
    # Three failed polls, each ended by its first failure: not 3 x 1,000 requests.
    assert len(statuses.calls) <= 3 * 8


def test_a_slow_poll_is_cancelled_at_the_deadline(monkeypatch):
    cancelled: list[str] = []

    async def aget_status(_hook: CambHook, task_id: str, kind: object = "tts") -> Any:
        try:
            await asyncio.sleep(30)  # an API that takes its time
        except asyncio.CancelledError:
            cancelled.append(task_id)
            raise
        return success(task_id, 11)

    monkeypatch.setattr(CambHook, "aget_task_status", aget_status)
    started = time.monotonic()

    (event,) = events_of(make_trigger(end_time=time.time() + 0.3))

    assert event["status"] == "timeout"
    assert event["pending_task_ids"] == ["t1", "t2"]
    assert time.monotonic() - started < 2  # within one poll interval of the deadline, not 30 s
    assert sorted(cancelled) == ["t1", "t2"]


def test_every_log_line_comes_from_the_triggers_own_task(monkeypatch):
    """The triggerer routes a trigger's log lines to the task's log by the ``trigger_id`` it binds
    (structlog contextvars) in the trigger's task: a line written from a worker thread, or any other
    task, would miss the task log. Retries, progress and give-up all carry it here."""
    import structlog

    ScriptedStatuses({"t1": [unavailable(), pending("t1"), success("t1", 11)]}).install(monkeypatch)

    async def run_as_the_triggerer_does() -> list[Any]:
        structlog.contextvars.bind_contextvars(trigger_id=7)
        return [event async for event in make_trigger(camb_task_ids=["t1"]).run()]

    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as lines:
        asyncio.run(run_as_the_triggerer_does())

    ours = [line for line in lines if "Camb.ai" in str(line.get("event"))]
    assert any("Could not get every Camb.ai task status" in str(line["event"]) for line in ours)
    assert any("still pending" in str(line["event"]) for line in ours)
    assert all(line.get("trigger_id") == 7 for line in ours)


def test_hook_retry_lines_inside_the_trigger_reach_the_task_log_too(camb_emulator):
    import structlog

    (task_id,) = camb_emulator.add_tts_tasks(1)
    camb_emulator.fail_next("tts_status", count=2, status=503)

    async def run_as_the_triggerer_does() -> list[Any]:
        structlog.contextvars.bind_contextvars(trigger_id=9)
        return [event async for event in make_trigger(camb_task_ids=[task_id]).run()]

    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as lines:
        (event,) = asyncio.run(run_as_the_triggerer_does())

    assert event.payload["status"] == "success"
    retries = [line for line in lines if "retry" in str(line.get("event"))]
    assert len(retries) == 2
    assert all(line.get("trigger_id") == 9 for line in retries)
