"""CambTaskTrigger (CambTTSTaskTrigger for TTS): waits on Camb.ai tasks in the triggerer."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_camb.exceptions import CambAPIError, CambConnectionConfigError
from airflow_provider_camb.hooks._tts_polling import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    TTSTaskWaiter,
    describe_failures,
    failure_details,
    gave_up_error,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.hooks.result_kinds import kind_label
from airflow_provider_camb.hooks.result_kinds import result_kind as result_kind_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: Seconds the poll at the deadline may take (at most one poll interval).
LAST_POLL_GRACE = 5.0

#: Every ``status`` a CambTTSTaskTrigger event can carry.
EVENT_STATUSES = frozenset({"success", "error", "timeout"})


class CambTaskTrigger(BaseTrigger):
    """Polls Camb.ai tasks of one kind until all succeed, one fails, or the deadline passes.

    A good citizen of a shared triggerer: the polls are natively async (the hook's
    :meth:`~airflow_provider_camb.hooks.camb.CambHook.aget_tts_task_status` over one httpx client
    per event loop, ``asyncio.sleep`` between retries), so no thread of the triggerer's pool is
    ever taken and every log line comes from the trigger's own task, which the triggerer routes to
    the task's log. Only unfinished tasks are asked about, at most ``max_concurrent_requests`` at
    once; a poll that meets an outage stops at its first failed request. The deadline holds even
    during a slow poll: requests still in flight at ``end_time`` are cancelled. Yields exactly one
    event, then returns:

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
    :param first_poll_at: wall-clock time (epoch seconds) of the first poll; the deferring sensor
        has just checked, so asking again at once would double its calls. ``None`` polls at once
        (so does a trigger restarted on another triggerer after that time).
    :param result_kind: the tasks' kind: ``tts`` (default), ``dubbing``, ``translation``,
        ``text_to_sound``, ``transcription``, ``audio_separation`` or ``stories``.
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
        first_poll_at: float | None = None,
        result_kind: str = "tts",
    ) -> None:
        super().__init__()
        self.camb_task_ids = [str(task_id) for task_id in camb_task_ids]
        self.camb_conn_id = camb_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.run_ids_by_task = {str(k): int(v) for k, v in (run_ids_by_task or {}).items()}
        self.max_concurrent_requests = int(max_concurrent_requests)
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.result_kind = result_kind_of(result_kind).name

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
                "first_poll_at": self.first_poll_at,
                "result_kind": self.result_kind,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait(CambHook(camb_conn_id=self.camb_conn_id)))

    async def _wait(self, hook: CambHook) -> dict[str, Any]:
        try:
            await hook.aload_connection()
            waiter = TTSTaskWaiter(
                self.camb_task_ids,
                known_run_ids=self.run_ids_by_task,
                max_consecutive_errors=self.max_consecutive_errors,
                max_concurrent_requests=self.max_concurrent_requests,
                label=kind_label(self.result_kind),
            )
        except (CambConnectionConfigError, ValueError) as err:
            return _error(str(err), retryable=False)
        except Exception as err:  # e.g. the connection does not exist (yet)
            return _error(f"Could not read the Camb.ai connection {self.camb_conn_id!r}: {err}")
        if self.first_poll_at is not None:
            await asyncio.sleep(max(0.0, self._until(self.first_poll_at)))
        while True:
            remaining = None if self.end_time is None else self._until(self.end_time)
            # Cancelled at the deadline: a poll stuck on a slow API must not outlive it. The last
            # poll, woken at the deadline itself, gets a short grace (within one poll interval).
            limit = None if remaining is None else max(remaining, min(self.poll_interval, LAST_POLL_GRACE))
            try:
                result = await asyncio.wait_for(
                    waiter.apoll(functools.partial(hook.aget_task_status, kind=self.result_kind)),
                    timeout=limit,
                )
            except asyncio.TimeoutError:
                return self._timeout(waiter.unfinished, dict(waiter.run_ids_by_task))
            except (CambAPIError, CambConnectionConfigError, ValueError) as err:
                # Only errors a later poll cannot fix escape apoll(): 401/403, 404 for an unknown task...
                return _error(str(err), retryable=False)
            if result.failures:
                return {
                    **_error(describe_failures(result.failures, waiter.label), retryable=False),
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
            remaining = None if self.end_time is None else self._until(self.end_time)
            if remaining is not None and remaining <= 0:
                return self._timeout(result.pending, result.run_ids_by_task)
            # Wake for one last poll at the deadline rather than sleeping past it.
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )

    @staticmethod
    def _until(moment: float) -> float:
        # Wall clock, not monotonic: the deadline was set in another process (the worker).
        return moment - time.time()

    def _timeout(self, pending: list[str], run_ids_by_task: dict[str, int]) -> dict[str, Any]:
        return {
            "status": "timeout",
            "message": (
                f"{len(pending)} of {len(self.camb_task_ids)} Camb.ai {kind_label(self.result_kind)} "
                f"tasks were still unfinished at the deadline: {', '.join(pending[:10])}"
                + (" ..." if len(pending) > 10 else "")
            ),
            "pending_task_ids": pending,
            "run_ids_by_task": run_ids_by_task,
        }


class CambTTSTaskTrigger(CambTaskTrigger):
    """:class:`CambTaskTrigger` for TTS tasks (its class path is what deferred TTS sensors stored)."""


def _error(message: str, *, retryable: bool = True) -> dict[str, Any]:
    return {"status": "error", "message": message, "retryable": retryable}
