"""The state of a Camb.ai TTS task, and which states are final. Pure: no Airflow, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SUCCESS_STATES = frozenset({"SUCCESS"})
# TIMEOUT and PAYMENT_REQUIRED are documented statuses although the current OpenAPI enum only
# lists SUCCESS, PENDING and ERROR; treating them as failures is the safe reading.
FAILURE_STATES = frozenset({"ERROR", "TIMEOUT", "PAYMENT_REQUIRED"})
PENDING_STATES = frozenset({"PENDING"})


@dataclass(frozen=True)
class CambTaskStatus:
    """One answer of ``GET /tts/{task_id}``.

    :param task_id: the Camb.ai task ID the status belongs to.
    :param status: the status string as the API spells it (``PENDING``, ``SUCCESS``, ``ERROR``...).
    :param run_id: the run ID, set once the task succeeded.
    :param exception_reason: the API's failure reason, if any.
    :param message: the API's message, if any (dicts are rendered as JSON text).
    """

    task_id: str
    status: str
    run_id: int | None = None
    exception_reason: str | None = None
    message: str | None = None

    @property
    def is_success(self) -> bool:
        return self.status in SUCCESS_STATES

    @property
    def is_failure(self) -> bool:
        return self.status in FAILURE_STATES

    @property
    def is_terminal(self) -> bool:
        """Unknown statuses are not terminal: we keep waiting and the sensor's timeout bounds it."""
        return self.is_success or self.is_failure

    @property
    def is_known(self) -> bool:
        return self.status in SUCCESS_STATES | FAILURE_STATES | PENDING_STATES

    def describe(self) -> str:
        """A one-line account of the status for logs and error messages."""
        parts = [f"task {self.task_id} is {self.status}"]
        if self.exception_reason:
            parts.append(f"reason: {self.exception_reason}")
        if self.message:
            parts.append(f"message: {self.message}")
        return "; ".join(parts)

    @classmethod
    def from_api(cls, task_id: str, payload: Any) -> CambTaskStatus:
        """Build from the JSON body of ``GET /tts/{task_id}``.

        :raises ValueError: if the body has no ``status``, or a ``SUCCESS`` comes without a run ID.
        """
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            raise ValueError(f"unexpected status answer for task {task_id}: {str(payload)[:200]}")
        status = payload["status"].strip().upper()
        run_id = payload.get("run_id")
        if isinstance(run_id, bool) or not isinstance(run_id, (int, type(None))):
            run_id = int(run_id) if isinstance(run_id, str) and run_id.isdigit() else None
        if status in SUCCESS_STATES and not run_id:
            raise ValueError(f"task {task_id} reported SUCCESS without a run_id: {str(payload)[:200]}")
        message = payload.get("message")
        if message is not None and not isinstance(message, str):
            message = json.dumps(message, sort_keys=True, default=str)
        reason = payload.get("exception_reason")
        return cls(
            task_id=task_id,
            status=status,
            run_id=run_id,
            exception_reason=None if reason in (None, "", "NONE") else str(reason),
            message=message or None,
        )
