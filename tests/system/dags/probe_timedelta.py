"""Probe DAG for tests/system: a task deferring on Airflow's own TimeDeltaTrigger.

``DeferForSecondsOperator`` notes the wall time it deferred at, passes it through the trigger's
resume kwargs and returns (XCom ``return_value``) how long the round trip really took, so a test
can tell whether a busy triggerer still fires a plain timer on time.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeferForSecondsOperator(BaseOperator):
    """Defers on ``TimeDeltaTrigger(seconds)`` and returns the measured deferral.

    :param seconds: how long the trigger waits.
    """

    def __init__(self, *, seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def execute(self, context: Context) -> None:
        deferred_at = time.time()
        self.log.info("Deferring on a %.1f s TimeDeltaTrigger at %.3f", self.seconds, deferred_at)
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=self.seconds)),
            method_name="resume",
            kwargs={"deferred_at": deferred_at},
        )

    def resume(self, context: Context, event: Any = None, deferred_at: float = 0.0) -> dict[str, float]:
        resumed_at = time.time()
        delay = resumed_at - deferred_at
        self.log.info(
            "The %.1f s TimeDeltaTrigger resumed the task %.2f s after it deferred", self.seconds, delay
        )
        return {"seconds": self.seconds, "deferred_at": deferred_at, "resumed_at": resumed_at, "delay": delay}


with DAG(dag_id="probe_timedelta", schedule=None, catchup=False, tags=["probe"]):
    DeferForSecondsOperator(task_id="defer_5s", seconds=5)
