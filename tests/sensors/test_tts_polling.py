"""The pure polling logic the sensor and the trigger share."""

from __future__ import annotations

import pytest

from airflow_provider_camb.exceptions import CambAPIError, CambAuthError
from airflow_provider_camb.hooks._tts_polling import TTSTaskWaiter, describe_failures, is_transient
from tests.sensors.fakes import ScriptedStatuses, status, success


@pytest.mark.parametrize(
    ("status_code", "transient"),
    [
        (None, True),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (200, True),
        (400, False),
        (404, False),
        (422, False),
    ],
)
def test_only_errors_a_later_poll_may_fix_are_transient(status_code, transient):
    error = CambAPIError("x", status_code=status_code, endpoint="GET /tts/{task_id}")

    assert is_transient(error) is transient


@pytest.mark.parametrize("status_code", [401, 403])
def test_a_rejected_key_is_never_transient(status_code):
    assert not is_transient(CambAuthError("no", status_code=status_code, endpoint="GET /tts/{task_id}"))


def test_a_malformed_status_answer_is_ridden_out_like_an_outage():
    # CambHook turns "SUCCESS without a run_id" into a CambAPIError carrying the 200 it came with.
    malformed = CambAPIError(
        "task t1 reported SUCCESS without a run_id", status_code=200, endpoint="GET /tts"
    )
    statuses = ScriptedStatuses({"t1": [malformed, success("t1", 11)]})
    waiter = TTSTaskWaiter(["t1"], max_consecutive_errors=1)

    first = waiter.poll(statuses)
    second = waiter.poll(statuses)

    assert (first.error, first.gave_up, first.done) == (malformed, False, False)
    assert second.done and second.run_ids_by_task == {"t1": 11}


def test_error_message_names_five_failed_tasks_and_counts_the_rest():
    failures = [status(f"t{n}", "ERROR", exception_reason="INTERNAL_ERROR") for n in range(7)]

    message = describe_failures(failures)

    assert message.startswith("7 Camb.ai TTS tasks failed: [task t0 is ERROR; reason: INTERNAL_ERROR]; ")
    assert "[task t4 is ERROR" in message
    assert "t5" not in message
    assert message.endswith(" and 2 more")


def test_failed_tasks_are_not_counted_as_pending():
    statuses = ScriptedStatuses({"t1": [status("t1", "TIMEOUT")], "t2": [status("t2", "PENDING")]})

    result = TTSTaskWaiter(["t1", "t2"]).poll(statuses)

    assert [f.task_id for f in result.failures] == ["t1"]
    assert result.pending == ["t2"]
    assert not result.done
