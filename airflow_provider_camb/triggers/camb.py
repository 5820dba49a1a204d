"""CambTTSTaskTrigger: waits on Camb.ai TTS tasks in the triggerer, for the deferrable sensor."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_camb.exceptions import CambAPIError, CambConnectionConfigError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.sensors._tts_polling import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    TTSTaskWaiter,
    describe_failures,
    failure_details,
    gave_up_error,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: Every ``status`` a CambTTSTaskTrigger event can carry.
EVENT_STATUSES = frozenset({"success", "error", "timeout"})


class CambTTSTaskTrigger(BaseTrigger):
    """Polls Camb.ai TTS tasks until all succeed, one fails, or the deadline passes.

    Only unfinished tasks are asked about, through the blocking :class:`CambHook` in a worker
    thread (``asyncio.to_thread``), so the triggerer's event loop never blocks. Yields exactly
    one event, then returns:

    * ``{"status": "success", "camb_task_ids": [...], "run_ids_by_task": {task_id: run_id}}``
    * ``{"status": "error", "message": ..., "retryable": bool, ...}``: a task failed
      (``failed_tasks`` lists task_id, status, exception_reason, message), the API rejected the
      request, or polls failed more than ``max_consecutive_errors`` times in a row (``api_error``
      holds the last error's message, status_code and endpoint).
    * ``{"status": "timeout", "message": ..., "pending_task_ids": [...], "run_ids_by_task": {...}}``

    :param camb_task_ids: the Camb.ai task IDs.
    :param camb_conn_id: the Airflow connection of the Camb.ai API.
    :param poll_interval: seconds between polls.
    :param end_time: wall-clock deadline as epoch seconds (``time.time()``), so it means the same
        in the triggerer as in the worker that deferred; ``None`` waits without limit.
    :param max_consecutive_errors: failed polls in a row (each after the hook's own retries)
        tolerated before the trigger gives up with an ``error`` event.
    :param run_ids_by_task: ``task_id -> run_id`` already known to have succeeded; not asked again
        and returned in the ``success`` event.
    :param max_concurrent_requests: status requests in flight at once.
    """

    def __init__(
        self,
        camb_task_ids: list[str],
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        run_ids_by_task: dict[str, int] | None = None,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    ) -> None:
        super().__init__()
        self.camb_task_ids = [str(task_id) for task_id in camb_task_ids]
        self.camb_conn_id = camb_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.run_ids_by_task = {str(k): int(v) for k, v in (run_ids_by_task or {}).items()}
        self.max_concurrent_requests = int(max_concurrent_requests)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "camb_task_ids": list(self.camb_task_ids),
                "camb_conn_id": self.camb_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_consecutive_errors": self.max_consecutive_errors,
                "run_ids_by_task": dict(self.run_ids_by_task),
                "max_concurrent_requests": self.max_concurrent_requests,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CambHook(camb_conn_id=self.camb_conn_id)
        try:
            yield TriggerEvent(await self._wait(hook))
        finally:
            hook.close()

    async def _wait(self, hook: CambHook) -> dict[str, Any]:
        try:
            await hook.aload_connection()
            waiter = TTSTaskWaiter(
                self.camb_task_ids,
                known_run_ids=self.run_ids_by_task,
                max_consecutive_errors=self.max_consecutive_errors,
                max_concurrent_requests=self.max_concurrent_requests,
            )
        except (CambConnectionConfigError, ValueError) as err:
            return _error(str(err), retryable=False)
        except Exception as err:  # e.g. the connection does not exist (yet)
            return _error(f"Could not read the Camb.ai connection {self.camb_conn_id!r}: {err}")
        while True:
            try:
                result = await asyncio.to_thread(waiter.poll, hook.get_tts_task_status)
            except (CambAPIError, CambConnectionConfigError, ValueError) as err:
                # Only errors a later poll cannot fix escape poll(): 401/403, 404 for an unknown task...
                return _error(str(err), retryable=False)
            if result.failures:
                return {
                    **_error(describe_failures(result.failures), retryable=False),
                    "failed_tasks": failure_details(result.failures),
                }
            if result.done:
                return {
                    "status": "success",
                    "camb_task_ids": list(self.camb_task_ids),
                    "run_ids_by_task": result.run_ids_by_task,
                }
            if result.gave_up:
                outage = gave_up_error(result, self.max_consecutive_errors)
                return {
                    **_error(str(outage)),
                    "api_error": {
                        "message": outage.message,
                        "status_code": outage.status_code,
                        "endpoint": outage.endpoint,
                    },
                }
            result.log_still_waiting(self.log, len(self.camb_task_ids), self.max_consecutive_errors)
            remaining = None if self.end_time is None else self.end_time - time.time()
            if remaining is not None and remaining <= 0:
                return {
                    "status": "timeout",
                    "message": (
                        f"{len(result.pending)} of {len(self.camb_task_ids)} Camb.ai TTS tasks were "
                        f"still unfinished at the deadline: {', '.join(result.pending[:10])}"
                        + (" ..." if len(result.pending) > 10 else "")
                    ),
                    "pending_task_ids": result.pending,
                    "run_ids_by_task": result.run_ids_by_task,
                }
            # Wake for one last poll at the deadline rather than sleeping past it.
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )


def _error(message: str, *, retryable: bool = True) -> dict[str, Any]:
    return {"status": "error", "message": message, "retryable": retryable}
