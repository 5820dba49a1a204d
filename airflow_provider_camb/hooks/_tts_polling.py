"""Waiting on Camb.ai TTS tasks: one poll of the unfinished tasks, shared by sensor and trigger.

No Airflow import and no clock: the sensor decides about pokes, timeouts and ``soft_fail``, the
trigger about sleeping and its deadline. What a status *means* is decided here, once, for the
blocking poll (the sensor, on a worker) and the async one (the trigger, in the triggerer's event
loop, without threads).

A poll stops early once a request has failed with a transient error (after the hook's own
retries): during an outage, asking the other 999 tasks would only multiply the wait by 1,000.
The tasks not asked stay pending and are asked at the next poll.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from airflow_provider_camb.exceptions import CambAPIError, CambAuthError
from airflow_provider_camb.hooks.retry_policy import RETRYABLE_STATUS_CODES
from airflow_provider_camb.utils.rendered_values import materialise, split_rendered_list

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from airflow_provider_camb.hooks.task_status import CambTaskStatus

#: Stands for a task not asked in this poll because an earlier request of it failed.
_NOT_ASKED = object()

#: Consecutive failed polls (each already retried by the hook) tolerated before giving up.
DEFAULT_MAX_CONSECUTIVE_ERRORS = 3
#: Status requests in flight at once; below requests' default pool of 10 connections per host.
DEFAULT_MAX_CONCURRENT_REQUESTS = 8
# Failed tasks named in one error message; the rest are counted.
_MAX_FAILURES_SHOWN = 5


def normalise_task_ids(value: object) -> list[str]:
    """Turn ``camb_task_ids`` as rendered into unique task IDs, in first-seen order.

    Accepts one ID, an iterable of IDs (a list, a tuple, a lazy XCom sequence), or a string as a
    template renders a list without native rendering: ``"['a', 'b']"``, ``'["a"]'``, ``"a,b"``.

    :raises ValueError: if there is no ID, or any item is not a non-empty string without ``/``.
    """
    if isinstance(value, str):
        items: list[object] = split_rendered_list(value)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = materialise(value)
    else:
        raise ValueError(
            f"camb_task_ids must be a Camb.ai task ID or a list of them, got "
            f"{type(value).__name__}: {value!r}"
        )
    ids: dict[str, None] = {}
    bad: list[object] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else ""
        if not text or "/" in text or any(char.isspace() for char in text):
            bad.append(item)
        else:
            ids.setdefault(text, None)
    if bad:
        raise ValueError(
            f"Camb.ai task IDs must be non-empty strings; invalid: {', '.join(repr(v) for v in bad)}"
        )
    if not ids:
        raise ValueError("No Camb.ai task IDs were given (camb_task_ids is empty).")
    return list(ids)


def is_transient(error: CambAPIError) -> bool:
    """Whether a later poll may succeed: no answer, 408/429/5xx, or a malformed 2xx answer.

    401/403 (a rejected key) and other 4xx (e.g. 404 for a task ID Camb.ai does not know) are
    answers about the request itself, so polling again cannot change them.
    """
    if isinstance(error, CambAuthError):
        return False
    code = error.status_code
    return code is None or code in RETRYABLE_STATUS_CODES or 200 <= code < 300


def describe_failures(failures: list[CambTaskStatus], label: str = "TTS") -> str:
    """``"Camb.ai TTS task a is ERROR; reason: ...; message: ..."`` for up to five failed tasks.

    :param label: the tasks' kind as log lines name it (``TTS``, ``dubbing``...).
    """
    shown = "; ".join(f"[{status.describe()}]" for status in failures[:_MAX_FAILURES_SHOWN])
    more = len(failures) - _MAX_FAILURES_SHOWN
    count = f"{len(failures)} Camb.ai {label} task{'s' if len(failures) != 1 else ''} failed"
    return f"{count}: {shown}" + (f" and {more} more" if more > 0 else "")


def failure_details(failures: list[CambTaskStatus]) -> list[dict[str, str | None]]:
    """The failed tasks as JSON-safe dicts (for trigger events)."""
    return [
        {
            "task_id": status.task_id,
            "status": status.status,
            "exception_reason": status.exception_reason,
            "message": status.message,
        }
        for status in failures
    ]


def gave_up_error(result: PollResult, max_consecutive_errors: int) -> CambAPIError:
    """The error for "polls kept failing": typed, carrying the last answer's status and endpoint.

    Deliberately not an Airflow exception: Airflow's ``retries`` should apply, and ``soft_fail``
    should not turn an outage into a skip.
    """
    last = result.error
    return CambAPIError(
        f"{result.consecutive_errors} polls of the task statuses failed in a row (more than "
        f"max_consecutive_errors={max_consecutive_errors}); last answer: "
        f"{last.message if last else 'none'}",
        status_code=last.status_code if last else None,
        endpoint=last.endpoint if last else "GET /tts/{task_id}",
    )


class TaskLog(Protocol):
    """What the sensor's and the trigger's loggers (stdlib or Airflow's structlog) both offer."""

    def info(self, event: str, *args: object) -> object: ...

    def warning(self, event: str, *args: object) -> object: ...


@dataclass
class PollResult:
    """What one poll found.

    :param run_ids_by_task: ``task_id -> run_id`` of every task known to have succeeded so far.
    :param pending: tasks still to wait on (``PENDING``, an unknown status, or not asked because
        of an error), in input order.
    :param failures: tasks that reached a failure status in this poll.
    :param unknown: tasks that answered a status this provider does not know.
    :param error: the first transient API error of this poll, if any.
    :param consecutive_errors: failed polls in a row, this one included.
    :param gave_up: ``True`` once ``consecutive_errors`` exceeds the tolerance.
    """

    run_ids_by_task: dict[str, int]
    pending: list[str]
    failures: list[CambTaskStatus] = field(default_factory=list)
    unknown: list[CambTaskStatus] = field(default_factory=list)
    error: CambAPIError | None = None
    consecutive_errors: int = 0
    gave_up: bool = False
    label: str = "TTS"

    @property
    def done(self) -> bool:
        """Every task succeeded."""
        return not self.pending and not self.failures

    def log_still_waiting(self, log: TaskLog, total: int, max_consecutive_errors: int) -> None:
        """The task-log lines of a poll after which the wait goes on (sensor and trigger alike)."""
        if self.error is not None:
            log.warning(
                "Could not get every Camb.ai task status (%d of %d failed polls tolerated in a row): %s",
                self.consecutive_errors,
                max_consecutive_errors,
                self.error,
            )
        for status in self.unknown:
            log.warning("Unknown Camb.ai task status, waiting on it: %s", status.describe())
        log.info(
            "Camb.ai %s tasks: %d of %d succeeded, %d still pending.",
            self.label,
            len(self.run_ids_by_task),
            total,
            len(self.pending),
        )


def check_polling_limits(max_consecutive_errors: int, max_concurrent_requests: int) -> None:
    """The one check of the polling limits, for the sensor (at parse time) and the waiter.

    :param max_consecutive_errors: failed polls in a row tolerated; 0 or more.
    :param max_concurrent_requests: status calls in flight at once; 1 or more.
    :raises ValueError: naming the limit that is out of range.
    """
    if max_consecutive_errors < 0:
        raise ValueError(f"max_consecutive_errors must be 0 or more, got {max_consecutive_errors}")
    if max_concurrent_requests < 1:
        raise ValueError(f"max_concurrent_requests must be 1 or more, got {max_concurrent_requests}")


class TTSTaskWaiter:
    """Progress of one wait on a set of TTS tasks: which succeeded, and failed polls in a row.

    A waiter lives for one ``execute()`` of the sensor (every poke of a poke-mode sensor, one poke
    of a reschedule-mode sensor) or one run of the trigger, never longer. Each :meth:`poll` asks
    only about the tasks that have not succeeded yet.

    :param task_ids: the tasks, as returned by :func:`normalise_task_ids`.
    :param known_run_ids: ``task_id -> run_id`` already seen to succeed (not asked again).
    :param max_consecutive_errors: failed polls in a row tolerated; one more gives up.
    :param max_concurrent_requests: status requests in flight at once.
    :param label: the tasks' kind as log lines name it (``TTS``, ``dubbing``...).
    """

    def __init__(
        self,
        task_ids: list[str],
        *,
        known_run_ids: Mapping[str, int] | None = None,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        label: str = "TTS",
    ) -> None:
        check_polling_limits(max_consecutive_errors, max_concurrent_requests)
        self.task_ids = list(task_ids)
        known = known_run_ids or {}
        self.run_ids_by_task: dict[str, int] = {t: int(known[t]) for t in self.task_ids if t in known}
        self.max_consecutive_errors = max_consecutive_errors
        self.max_concurrent_requests = max_concurrent_requests
        self.consecutive_errors = 0
        self.label = label

    @property
    def unfinished(self) -> list[str]:
        return [task_id for task_id in self.task_ids if task_id not in self.run_ids_by_task]

    def ordered_run_ids(self) -> list[int]:
        """The run IDs in task order (complete once a poll reported ``done``)."""
        return [self.run_ids_by_task[task_id] for task_id in self.task_ids if task_id in self.run_ids_by_task]

    def poll(self, get_status: Callable[[str], CambTaskStatus]) -> PollResult:
        """Ask for the status of every unfinished task once (blocking; for the sensor).

        :param get_status: ``CambHook.get_tts_task_status`` or a stand-in.
        :raises CambAPIError: at once for an error polling again cannot fix (401/403, other 4xx).
        :raises CambConnectionConfigError: at once, from the hook.
        """
        to_ask = self.unfinished
        return self._record(to_ask, self._ask(get_status, to_ask))

    async def apoll(self, aget_status: Callable[[str], Awaitable[CambTaskStatus]]) -> PollResult:
        """Ask for the status of every unfinished task once, on the event loop (for the trigger).

        At most ``max_concurrent_requests`` requests are in flight; the first transient failure
        cancels the requests still in flight or waiting, which stay pending for the next poll.

        :param aget_status: ``CambHook.aget_tts_task_status`` or a stand-in.
        :raises CambAPIError: at once for an error polling again cannot fix (401/403, other 4xx).
        """
        to_ask = self.unfinished
        answers: dict[str, CambTaskStatus | CambAPIError] = {}
        gate = asyncio.Semaphore(self.max_concurrent_requests)
        tasks: list[asyncio.Task[None]] = []

        def stop_the_others() -> None:
            me = asyncio.current_task()
            for task in tasks:
                if task is not me:
                    task.cancel()

        async def one(task_id: str) -> None:
            async with gate:
                try:
                    answers[task_id] = await aget_status(task_id)
                except CambAPIError as err:
                    stop_the_others()
                    if not is_transient(err):
                        raise
                    answers[task_id] = err

        tasks.extend(asyncio.ensure_future(one(task_id)) for task_id in to_ask)
        try:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # The trigger's deadline: nothing of this poll may outlive it.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                raise outcome
        return self._record(to_ask, [answers.get(task_id, _NOT_ASKED) for task_id in to_ask])

    def _record(self, to_ask: list[str], answers: list[object]) -> PollResult:
        """Fold one poll's answers into the progress; what a status means is decided here."""
        failures: list[CambTaskStatus] = []
        unknown: list[CambTaskStatus] = []
        error: CambAPIError | None = None
        for task_id, answer in zip(to_ask, answers, strict=True):
            if answer is _NOT_ASKED:
                continue
            if isinstance(answer, CambAPIError):
                error = error or answer
                continue
            status: CambTaskStatus = answer  # type: ignore[assignment]
            if status.is_success and status.run_id is not None:
                self.run_ids_by_task[task_id] = status.run_id
            elif status.is_failure:
                failures.append(status)
            elif not status.is_known:
                unknown.append(status)
        self.consecutive_errors = self.consecutive_errors + 1 if error is not None else 0
        failed_ids = {failure.task_id for failure in failures}
        return PollResult(
            run_ids_by_task=dict(self.run_ids_by_task),
            pending=[task_id for task_id in self.unfinished if task_id not in failed_ids],
            failures=failures,
            unknown=unknown,
            error=error,
            consecutive_errors=self.consecutive_errors,
            gave_up=error is not None and self.consecutive_errors > self.max_consecutive_errors,
            label=self.label,
        )

    def _ask(self, get_status: Callable[[str], CambTaskStatus], task_ids: list[str]) -> list[object]:
        broken = threading.Event()

        def one(task_id: str) -> object:
            if broken.is_set():
                return _NOT_ASKED
            try:
                return get_status(task_id)
            except CambAPIError as err:
                if not is_transient(err):
                    raise
                broken.set()
                return err

        if len(task_ids) <= 1 or self.max_concurrent_requests == 1:
            return [one(task_id) for task_id in task_ids]
        workers = min(self.max_concurrent_requests, len(task_ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="camb-tts-status") as pool:
            # map() re-raises the first fatal error in input order once the calls are done.
            return list(pool.map(one, task_ids))
