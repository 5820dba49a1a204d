"""CambTaskSensor and CambTTSTaskSensor: wait until Camb.ai tasks succeed, on a worker or deferred."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_provider_camb.exceptions import CambAPIError, CambConnectionConfigError
from airflow_provider_camb.hooks._tts_polling import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    TTSTaskWaiter,
    check_polling_limits,
    describe_failures,
    gave_up_error,
    normalise_task_ids,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.hooks.result_kinds import kind_label
from airflow_provider_camb.hooks.result_kinds import result_kind as result_kind_of
from airflow_provider_camb.triggers.camb import EVENT_STATUSES, CambTaskTrigger, CambTTSTaskTrigger
from airflow_provider_camb.utils.xcom_keys import RUN_IDS_BY_TASK

if TYPE_CHECKING:
    from airflow.sdk import Context

# How long after the trigger's own deadline the scheduler's deferral timeout fires. The trigger's
# deadline is the one meant to end the wait (its event names the unfinished tasks); the
# scheduler's is only a backstop for a triggerer that died.
_DEFERRAL_TIMEOUT_GRACE_SECONDS = 60.0


class CambTaskSensor(BaseSensorOperator):
    """Waits until every given Camb.ai task of one kind has succeeded, and returns their run IDs.

    Any batch kind (``result_kind``: ``tts``, ``dubbing``, ``translation``, ``text_to_sound``,
    ``transcription``, ``audio_separation``, ``stories``), polled at its status path
    (``GET /dub/{task_id}``...). :class:`CambTTSTaskSensor` is the TTS case; everything below
    holds for every kind.


    * Done when every task is ``SUCCESS``. XCom ``return_value``: the run IDs as a list of ints in
      the order of ``camb_task_ids`` (duplicates removed), ready for
      ``CambBulkTTSResultsOperator(run_ids=sensor.output)``; ``{task_id: run_id}`` goes under
      ``camb_run_ids_by_task``.
    * A task in a failure state (``ERROR``, ``TIMEOUT``, ``PAYMENT_REQUIRED``) fails the sensor at
      once with ``AirflowFailException`` naming the task, status, reason and message (with
      ``soft_fail=True`` the sensor is skipped instead). Unknown statuses are logged and waited on.
    * A poke whose status calls failed (after the hook's own retries: no answer, 408, 429, 5xx) is
      tolerated ``max_consecutive_errors`` times in a row. A rejected API key (401/403), an
      unusable connection, or a task ID the API does not know fail the sensor at once.
    * Poke mode asks only about the tasks not finished yet. Nothing is kept on the instance between
      ``execute()`` calls, so ``mode="reschedule"`` is safe: each rescheduled poke asks about every
      task and judges its own errors alone (a failed poll waits for the next poke; ``timeout``
      bounds the wait).
    * ``deferrable=True``: one check on the worker; if not done, the wait moves to
      :class:`~airflow_provider_camb.triggers.camb.CambTTSTaskTrigger` with a wall-clock deadline of
      ``timeout`` seconds from the start of ``execute()``.

    :param result_kind: the tasks' kind.
    :param camb_task_ids: the Camb.ai task IDs (templated): one ID, a list of IDs, an XComArg,
        or a string a template rendered a list to (``"['a', 'b']"``).
    :param camb_conn_id: the Airflow connection of the Camb.ai API.
    :param deferrable: wait in the triggerer instead of on a worker; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between the trigger's polls when deferred; defaults to
        ``poke_interval``.
    :param max_consecutive_errors: polls in a row whose status calls failed (each already retried
        by the hook) that are tolerated before the sensor fails; ``0`` fails at the first.
    :param max_concurrent_requests: status requests in flight at once in one poll.
    """

    template_fields: Sequence[str] = ("camb_task_ids",)
    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        result_kind: str,
        camb_task_ids: Any,
        camb_conn_id: str = CambHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_polling_limits(max_consecutive_errors, max_concurrent_requests)
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval}")
        self.result_kind = result_kind_of(result_kind).name
        self.camb_task_ids = camb_task_ids
        self.camb_conn_id = camb_conn_id
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval) if poll_interval is not None else self.poke_interval
        self.max_consecutive_errors = max_consecutive_errors
        self.max_concurrent_requests = max_concurrent_requests
        # The waiter of the execute() in progress; see execute().
        self._waiter: TTSTaskWaiter | None = None

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(camb_conn_id=self.camb_conn_id)

    def _task_ids(self) -> list[str]:
        try:
            return normalise_task_ids(self.camb_task_ids)
        except ValueError as err:
            raise AirflowFailException(str(err)) from err

    def _new_waiter(self) -> TTSTaskWaiter:
        return TTSTaskWaiter(
            self._task_ids(),
            max_consecutive_errors=self.max_consecutive_errors,
            max_concurrent_requests=self.max_concurrent_requests,
            label=self._label,
        )

    @property
    def _label(self) -> str:
        return kind_label(self.result_kind)

    def execute(self, context: Context) -> Any:
        # Progress (which tasks succeeded, failed polls in a row) lives for this call only: every
        # poke of a poke-mode sensor, or the single poke of one reschedule-mode try.
        self._waiter = waiter = self._new_waiter()
        try:
            if not self.deferrable:
                return super().execute(context)
            return self._check_then_defer(context, waiter)
        finally:
            self._waiter = None
            self.hook.close()

    def _check_then_defer(self, context: Context, waiter: TTSTaskWaiter) -> Any:
        deadline = time.time() + self.timeout
        try:
            first = self.poke(context)
        except AirflowFailException as err:
            # BaseSensorOperator honours soft_fail only inside its own poke loop, skipped here.
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping because soft_fail/never_fail is set: {err}") from err
            raise
        except Exception as err:
            if self.never_fail:
                raise AirflowSkipException(f"Skipping because never_fail is set: {err}") from err
            raise
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        self.log.info(
            "Deferring: waiting on %d Camb.ai %s task(s) in the triggerer.",
            len(waiter.unfinished),
            self._label,
        )
        trigger_class = CambTTSTaskTrigger if self.result_kind == "tts" else CambTaskTrigger
        self.defer(
            trigger=trigger_class(
                camb_task_ids=waiter.task_ids,
                camb_conn_id=self.camb_conn_id,
                poll_interval=self.poll_interval,
                end_time=deadline,
                max_consecutive_errors=self.max_consecutive_errors,
                run_ids_by_task=dict(waiter.run_ids_by_task),
                max_concurrent_requests=self.max_concurrent_requests,
                # The check above was the first poll: the trigger's comes one interval later.
                first_poll_at=time.time() + self.poll_interval,
                result_kind=self.result_kind,
            ),
            method_name="execute_complete",
            timeout=timedelta(
                seconds=self.timeout + max(_DEFERRAL_TIMEOUT_GRACE_SECONDS, 2 * self.poll_interval)
            ),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        # Called outside execute() (a test, a debugger), a poke starts from nothing.
        waiter = self._waiter or self._new_waiter()
        try:
            result = waiter.poll(functools.partial(self.hook.get_task_status, kind=self.result_kind))
        except (CambAPIError, CambConnectionConfigError) as err:
            # Only errors no later poll can fix escape poll(): 401/403, 404 for an unknown task...
            raise AirflowFailException(f"Cannot wait on Camb.ai {self._label} tasks: {err}") from err
        if result.failures:
            raise AirflowFailException(describe_failures(result.failures, self._label))
        if result.done:
            run_ids = waiter.ordered_run_ids()
            self.log.info(
                "All %d Camb.ai %s task(s) succeeded; run IDs: %s", len(run_ids), self._label, run_ids
            )
            context["ti"].xcom_push(key=RUN_IDS_BY_TASK, value=result.run_ids_by_task)
            return PokeReturnValue(is_done=True, xcom_value=run_ids)
        if result.gave_up:
            raise gave_up_error(result, self.max_consecutive_errors) from result.error
        result.log_still_waiting(self.log, len(waiter.task_ids), self.max_consecutive_errors)
        return False

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[int]:
        """Resume after the trigger: check its event and return the run IDs it carries.

        :raises AirflowFailException: no event, an unknown event, a failed task, a fatal API error,
            or a ``success`` event lacking a valid run ID for a requested task.
        :raises AirflowSensorTimeout: the trigger's deadline passed.
        :raises CambAPIError: polls kept failing (Airflow's ``retries`` apply; never a skip).
        :raises AirflowException: another retryable error, e.g. the connection could not be read.
        """
        if not isinstance(event, Mapping):
            raise AirflowFailException(
                f"{type(self).__name__} resumed without a trigger event (got {event!r}); cannot tell "
                f"whether the Camb.ai {self._label} tasks succeeded."
            )
        status = event.get("status")
        if status not in EVENT_STATUSES:
            raise AirflowFailException(
                f"{type(self).__name__} got a trigger event with unknown status {status!r}; expected one "
                f"of {sorted(EVENT_STATUSES)}. Event: {dict(event)!r}"
            )
        message = str(event.get("message") or "no message given")
        if status == "timeout":
            raise AirflowSensorTimeout(f"Camb.ai {self._label} tasks did not finish in time: {message}")
        if status == "error":
            if event.get("failed_tasks") or event.get("retryable") is False:
                raise AirflowFailException(message)
            api_error = event.get("api_error")
            if isinstance(api_error, Mapping):
                raise CambAPIError(
                    str(api_error.get("message") or message),
                    status_code=api_error.get("status_code"),
                    endpoint=str(api_error.get("endpoint") or "GET /tts/{task_id}"),
                )
            raise AirflowException(message)
        by_task = _run_ids_from_event(event)
        requested = self._task_ids()
        missing = [task_id for task_id in requested if task_id not in by_task]
        if missing:
            raise AirflowFailException(
                f"The trigger reported success without a run ID for {len(missing)} requested Camb.ai "
                f"task(s): {', '.join(missing[:10])}"
            )
        run_ids_by_task = {task_id: by_task[task_id] for task_id in requested}
        context["ti"].xcom_push(key=RUN_IDS_BY_TASK, value=run_ids_by_task)
        self.log.info("All %d Camb.ai %s task(s) succeeded.", len(requested), self._label)
        return list(run_ids_by_task.values())


class CambTTSTaskSensor(CambTaskSensor):
    """Waits until every given Camb.ai TTS task has succeeded, and returns their run IDs.

    :class:`CambTaskSensor` for ``result_kind="tts"`` (``GET /tts/{task_id}``); its return value
    feeds ``CambBulkTTSResultsOperator(run_ids=sensor.output)`` directly. Every parameter of
    :class:`CambTaskSensor` but ``result_kind`` applies.
    """

    def __init__(self, *, camb_task_ids: Any, **kwargs: Any) -> None:
        super().__init__(result_kind="tts", camb_task_ids=camb_task_ids, **kwargs)


def _run_ids_from_event(event: Mapping[str, Any]) -> dict[str, int]:
    raw = event.get("run_ids_by_task")
    if not isinstance(raw, Mapping):
        raise AirflowFailException(f"The trigger's success event has no run_ids_by_task map: {dict(event)!r}")
    by_task: dict[str, int] = {}
    bad: list[str] = []
    for task_id, run_id in raw.items():
        if isinstance(run_id, int) and not isinstance(run_id, bool) and run_id > 0:
            by_task[str(task_id)] = run_id
        else:
            bad.append(f"{task_id}={run_id!r}")
    if bad:
        raise AirflowFailException(f"The trigger's success event has invalid run IDs: {', '.join(bad)}")
    return by_task
