"""The provider in a real Airflow 3 deployment: DAG runs started with ``airflow dags trigger``,
tasks on LocalExecutor workers, deferred sensors in a separate ``airflow triggerer``.

Each test prints its figures (run pytest with ``-s`` to see them). To measure another version of
the provider in the same deployment (before/after figures), extract it and point
``CAMB_SYSTEM_PROVIDER_SRC`` at it; the deployment's processes then import it instead::

    git archive <commit> airflow_provider_camb | tar -x -C /tmp/camb-before
    CAMB_SYSTEM_PROVIDER_SRC=/tmp/camb-before pytest tests/system -s
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.system.conftest import SystemEmulator
    from tests.system.deployment import AirflowDeployment

pytestmark = [pytest.mark.system]

CAMB_TRIGGER = "airflow_provider_camb.triggers.camb.CambTTSTaskTrigger"


@dataclass
class TaskWatch:
    """What was seen of one task instance while its DAG run was polled."""

    states: list[str] = field(default_factory=list)
    next_methods: set[str] = field(default_factory=set)
    trigger_ids: set[int] = field(default_factory=set)
    deferred_at: float | None = None  # first time seen deferred (test process clock)
    left_deferred_at: float | None = None  # first time seen in another state after that

    def see(self, row: Any, now: float) -> None:
        state = row["state"]
        if not self.states or self.states[-1] != state:
            self.states.append(state)
        if row["next_method"]:
            self.next_methods.add(row["next_method"])
        if row["trigger_id"] is not None:
            self.trigger_ids.add(row["trigger_id"])
        if state == "deferred" and self.deferred_at is None:
            self.deferred_at = now
        if state != "deferred" and self.deferred_at is not None and self.left_deferred_at is None:
            self.left_deferred_at = now


class RunWatch:
    """Polls one DAG run's task instances and the trigger table, remembering what it saw."""

    def __init__(self, deployment: AirflowDeployment, dag_id: str, run_id: str) -> None:
        self.deployment = deployment
        self.dag_id = dag_id
        self.run_id = run_id
        self.tasks: dict[str, TaskWatch] = {}
        self.triggers: dict[int, dict[str, Any]] = {}

    def sample(self) -> str | None:
        """One look; the DAG run's state."""
        now = time.time()
        for key, row in self.deployment.task_instances(self.dag_id, self.run_id).items():
            self.tasks.setdefault(key, TaskWatch()).see(row, now)
        for row in self.deployment.triggers():
            self.triggers.setdefault(row["id"], {"classpath": row["classpath"], "triggerer_ids": set()})
            if row["triggerer_id"] is not None:
                self.triggers[row["id"]]["triggerer_ids"].add(row["triggerer_id"])
        return self.deployment.dag_run_state(self.dag_id, self.run_id)

    def until(
        self, condition: Callable[[RunWatch], Any], *, timeout: float, what: str, interval: float = 0.25
    ) -> Any:
        def check() -> Any:
            self.sample()
            return condition(self)

        return self.deployment.wait_for(
            check,
            timeout=timeout,
            what=lambda: f"{what} ({self.dag_id}/{self.run_id}; seen: {self.summary()})",
            interval=interval,
        )

    def finish(self, *, timeout: float) -> str:
        state = self.until(
            lambda w: (s := w.deployment.dag_run_state(w.dag_id, w.run_id)) in ("success", "failed") and s,
            timeout=timeout,
            what="the DAG run to finish",
        )
        return str(state)

    def all_deferred(self, task_keys: list[str]) -> bool:
        return all(self.tasks.get(k) is not None and self.tasks[k].deferred_at is not None for k in task_keys)

    def summary(self) -> dict[str, list[str]]:
        return {key: watch.states for key, watch in sorted(self.tasks.items())}


def trigger_log_events(
    deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str
) -> list[dict[str, Any]]:
    """The JSON lines the triggerer wrote for this task instance (``attempt=N.log.trigger.<job>.log``)."""
    events: list[dict[str, Any]] = []
    for path in deployment.task_log_files(dag_id, run_id, task_id):
        if ".trigger." in path.name:
            events.extend(json.loads(line) for line in path.read_text().splitlines() if line.startswith("{"))
    return events


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def status_calls_for(camb: SystemEmulator, task_ids: list[str], since: float) -> dict[str, int]:
    """``task_id -> number of GET /tts/{task_id}`` that arrived at or after ``since``."""
    wanted = set(task_ids)
    counts = dict.fromkeys(task_ids, 0)
    for entry in camb.requests("tts_status"):
        task_id = entry.path.rsplit("/", 1)[-1]
        if task_id in wanted and entry.time >= since:
            counts[task_id] += 1
    return counts


# -- 1. the end-to-end example --------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_example_tts_to_storage_succeeds_with_its_sensor_deferred_to_the_triggerer(
    deployment: AirflowDeployment, camb: SystemEmulator, tmp_path: Path
) -> None:
    dag_id, run_id = "example_camb_tts_to_storage", "system_e2e"
    # One PENDING answer for the worker's first check, one for the trigger's first poll: the
    # sensor has to defer and the triggerer has to do the waiting.
    task_ids = camb.add_tts_tasks(3, pending_polls=2)
    run_ids = [camb.run_id_for_task(t) for t in task_ids]
    destination = tmp_path / "audio"
    destination.mkdir()

    started = time.time()
    deployment.trigger(dag_id, run_id, {"camb_task_ids": task_ids, "destination": destination.as_uri() + "/"})
    watch = RunWatch(deployment, dag_id, run_id)
    state = watch.finish(timeout=180)
    elapsed = time.time() - started

    sensor = watch.tasks["wait_for_tts"]
    print(
        f"\n[system] {dag_id}: {state} {elapsed:.1f} s after `dags trigger`; "
        f"sensor states {sensor.states}, deferred for "
        f"{(sensor.left_deferred_at or 0) - (sensor.deferred_at or 0):.1f} s; "
        f"triggers seen {watch.triggers}"
    )
    assert state == "success", watch.summary()
    assert deployment.task_states(dag_id, run_id) == {
        "wait_for_tts": "success",
        "fetch_urls": "success",
        "store_audio": "success",
    }

    # Deferred for real: the TI was "deferred" with execute_complete to resume into, behind a
    # CambTTSTaskTrigger row that a triggerer job took, which wrote the trigger's log file.
    assert "deferred" in sensor.states
    assert sensor.next_methods == {"execute_complete"}
    camb_triggers = {tid: t for tid, t in watch.triggers.items() if t["classpath"] == CAMB_TRIGGER}
    assert sensor.trigger_ids and sensor.trigger_ids <= set(camb_triggers), (
        sensor.trigger_ids,
        watch.triggers,
    )
    triggerer_jobs = set(deployment.triggerer_job_ids())
    assert all(camb_triggers[tid]["triggerer_ids"] & triggerer_jobs for tid in sensor.trigger_ids)
    trigger_logs = [
        p for p in deployment.task_log_files(dag_id, run_id, "wait_for_tts") if ".trigger." in p.name
    ]
    assert trigger_logs, deployment.task_log_files(dag_id, run_id, "wait_for_tts")
    trigger_log = "".join(p.read_text() for p in trigger_logs)
    assert "starting" in trigger_log and "Trigger fired event" in trigger_log, trigger_log
    assert all(n >= 1 for n in status_calls_for(camb, task_ids, sensor.deferred_at or started).values())

    # The audio landed, whole, named by run ID.
    stored = {p.name: p.stat().st_size for p in destination.iterdir()}
    assert stored == {f"{rid}.flac": camb.audio_size(rid) for rid in run_ids if rid is not None}
    for rid in run_ids:
        assert rid is not None
        digest = hashlib.sha256((destination / f"{rid}.flac").read_bytes()).hexdigest()
        assert digest == camb.audio_sha256(rid)
    assert deployment.xcom(dag_id, run_id, "store_audio") == {
        str(rid): (destination / f"{rid}.flac").as_uri() for rid in run_ids
    }


# -- 2. a busy triggerer must still fire an unrelated timer on time ---------------------------------

TIMER_SECONDS = 5.0
#: A trigger counts as on time if it fires within 1.5x its own wait.
ON_TIME_FACTOR = 1.5
SLOW_STATUS_SECONDS = 15.0
SENSOR_POLL_INTERVAL = 5.0  # probe_camb_many_sensors


@dataclass
class TimerProbe:
    run_id: str
    deferred_at: float  # worker clock, when execute() deferred
    fired: float  # seconds from deferral until the metadata DB had the trigger's event
    fired_in_triggerer: float | None  # seconds until the triggerer logged "Trigger fired event"
    resumed: float  # seconds from deferral until resume() ran on a worker
    states: list[str]

    @property
    def fire_delay(self) -> float:
        """Deferral to firing: the triggerer's own "Trigger fired event" line where it wrote one
        (its supervisor stores the event up to a loop, ~1 s, later), else the DB's view."""
        return self.fired if self.fired_in_triggerer is None else self.fired_in_triggerer

    def describe(self) -> str:
        in_triggerer = "n/a" if self.fired_in_triggerer is None else f"{self.fired_in_triggerer:.1f} s"
        return (
            f"{TIMER_SECONDS:.0f} s TimeDeltaTrigger fired after {self.fired:.1f} s (event in the DB; "
            f"'Trigger fired event' logged after {in_triggerer}), task resumed after {self.resumed:.1f} s"
        )


def run_timer_probe(deployment: AirflowDeployment, run_id: str) -> TimerProbe:
    dag_id, task_id = "probe_timedelta", "defer_5s"
    deployment.trigger(dag_id, run_id, {})
    # Sampled every 0.1 s: when the TI leaves "deferred", the triggerer has stored the event.
    watch = RunWatch(deployment, dag_id, run_id)
    state = watch.until(
        lambda w: (s := w.deployment.dag_run_state(dag_id, run_id)) in ("success", "failed") and s,
        timeout=240,
        what="the timer probe to finish",
        interval=0.1,
    )
    mismatch = "but the task instance's state attribute is"
    if state != "success" and any(
        mismatch in line and run_id in line for line in deployment.scheduler_output().splitlines()
    ):
        pytest.fail(
            f"The timer probe's resumed task was failed by the scheduler: a stale executor event "
            f"from its deferral arrived after the trigger had fired (apache/airflow#67287). "
            f"Task states: {watch.summary()}"
        )
    assert state == "success", watch.summary()
    result = deployment.xcom(dag_id, run_id, task_id)
    ti = watch.tasks[task_id]
    assert ti.left_deferred_at is not None, ti.states
    fired_events = [
        e
        for e in trigger_log_events(deployment, dag_id, run_id, task_id)
        if e.get("event") == "Trigger fired event"
    ]
    return TimerProbe(
        run_id=run_id,
        deferred_at=result["deferred_at"],
        fired=ti.left_deferred_at - result["deferred_at"],
        fired_in_triggerer=(
            epoch(fired_events[0]["timestamp"]) - result["deferred_at"] if fired_events else None
        ),
        resumed=result["delay"],
        states=ti.states,
    )


@pytest.mark.timeout(600)
def test_a_5s_timer_fires_on_time_beside_20_deferred_camb_sensors_with_slow_status_calls(
    deployment: AirflowDeployment, camb: SystemEmulator, held_tasks: Callable[[int], list[str]]
) -> None:
    limit = ON_TIME_FACTOR * TIMER_SECONDS
    # The same probe on an idle triggerer: what the measurement itself costs.
    control = run_timer_probe(deployment, "system_timer_idle")
    print(f"\n[system] idle triggerer: {control.describe()}")
    assert control.fire_delay <= limit, f"even an idle triggerer missed the limit: {control.describe()}"

    dag_id, run_id = "probe_camb_many_sensors", "system_twenty_sensors"
    task_ids = held_tasks(20)
    sensors = [f"wait_{index:02d}" for index in range(20)]
    watch = RunWatch(deployment, dag_id, run_id)
    try:
        started = time.time()
        deployment.trigger(dag_id, run_id, {"camb_task_ids": task_ids})
        watch.until(lambda w: w.all_deferred(sensors), timeout=240, what="all 20 sensors to defer")
        all_deferred = time.time()
        # Every task asked about again after the last sensor deferred: 20 triggers are running.
        deployment.wait_for(
            lambda: min(status_calls_for(camb, task_ids, all_deferred).values()) >= 1,
            timeout=60,
            what="the triggerer to poll every Camb.ai task",
        )
        running = time.time()
        camb.add_latency("tts_status", SLOW_STATUS_SECONDS)
        # One poll interval on, every trigger is inside a 15 s status call.
        time.sleep(SENSOR_POLL_INTERVAL + 1)
        print(
            f"\n[system] 20 sensors deferred {all_deferred - started:.1f} s after `dags trigger`, "
            f"all polled by the triggerer {running - all_deferred:.1f} s later; status calls now take "
            f"{SLOW_STATUS_SECONDS:.0f} s"
        )
        loaded = run_timer_probe(deployment, "system_timer_busy")
        print(
            f"[system] busy triggerer (20 Camb triggers, {SLOW_STATUS_SECONDS:.0f} s status calls): "
            f"{loaded.describe()}"
        )
        probed = time.time()
    finally:
        camb.clear_faults()
        camb.release(task_ids)
    # Released, every sensor succeeds (a quick teardown, and the deployment is clean for the next test).
    released = time.time()
    state = watch.finish(timeout=240)
    print(f"[system] the 20 sensors finished ({state}) {time.time() - released:.1f} s after release")
    # How many slow calls the triggers had started: native async starts all 20 at once.
    slowed = [e.time - running for e in camb.requests("tts_status") if running <= e.time <= probed]
    print(
        f"[system] {len(slowed)} slowed status calls started in the {probed - running:.0f} s of the probe "
        f"(at +{min(slowed, default=0):.1f} .. +{max(slowed, default=0):.1f} s)"
    )
    assert state == "success", watch.summary()
    assert loaded.fire_delay <= limit, (
        f"a {TIMER_SECONDS:.0f} s TimeDeltaTrigger took {loaded.fire_delay:.1f} s to fire "
        f"(limit {limit:.1f} s) "
        f"beside 20 deferred CambTTSTaskSensors whose status calls take {SLOW_STATUS_SECONDS:.0f} s: "
        f"the Camb trigger is starving the triggerer. {loaded.describe()}"
    )


# -- 3. a triggerer that dies hands its triggers on --------------------------------------------------


@pytest.mark.timeout(300)
def test_a_deferred_sensor_resumes_in_a_new_triggerer_after_the_old_one_is_killed(
    deployment: AirflowDeployment, camb: SystemEmulator, held_tasks: Callable[[int], list[str]]
) -> None:
    dag_id, run_id = "probe_camb_one_sensor", "system_triggerer_killed"
    [task_id] = held_tasks(1)
    watch = RunWatch(deployment, dag_id, run_id)
    deployment.trigger(dag_id, run_id, {"camb_task_ids": [task_id]})
    watch.until(lambda w: w.all_deferred(["wait"]), timeout=120, what="the sensor to defer")
    deferred = watch.tasks["wait"].deferred_at or time.time()
    deployment.wait_for(
        lambda: status_calls_for(camb, [task_id], deferred)[task_id] >= 1,
        timeout=60,
        what="the triggerer to poll the task",
    )
    old = deployment.triggerer
    assert old is not None
    old_jobs = set(deployment.triggerer_job_ids())

    deployment.kill(old, signal.SIGKILL)
    killed = time.time()
    new = deployment.start_triggerer()
    assert old.popen.returncode == -signal.SIGKILL
    assert not old.group_alive()  # its trigger runner subprocess died with it

    deployment.wait_for(
        lambda: status_calls_for(camb, [task_id], killed)[task_id] >= 1,
        timeout=120,
        what="a new triggerer to poll the task",
    )
    resumed = time.time()
    new_jobs = set(deployment.triggerer_job_ids()) - old_jobs
    [trigger_id] = watch.tasks["wait"].trigger_ids
    owner = deployment.query("SELECT triggerer_id FROM trigger WHERE id = ?", trigger_id)
    camb.release([task_id])
    state = watch.finish(timeout=120)
    finished = time.time()
    print(
        f"\n[system] triggerer pid {old.pid} SIGKILLed; new triggerer pid {new.pid} (job {sorted(new_jobs)}) "
        f"polled the task {resumed - killed:.1f} s later; DAG run {state} {finished - killed:.1f} s "
        f"after the kill (including the release); sensor states {watch.tasks['wait'].states}"
    )
    assert state == "success", watch.summary()
    assert owner and owner[0]["triggerer_id"] in new_jobs
    ti = deployment.task_instances(dag_id, run_id)["wait"]
    assert ti["try_number"] == 1  # the wait went on: no retry, no second worker check
    assert "failed" not in watch.tasks["wait"].states and "up_for_retry" not in watch.tasks["wait"].states


# -- 4. the trigger's log lines reach the task's log -------------------------------------------------


@pytest.mark.timeout(300)
def test_retry_warnings_of_a_deferred_sensor_appear_in_the_task_log(
    deployment: AirflowDeployment, camb: SystemEmulator, held_tasks: Callable[[int], list[str]]
) -> None:
    dag_id, run_id = "probe_camb_one_sensor", "system_retry_logs"
    # Two tasks, as a sensor usually waits on several: then a poll asks about them concurrently,
    # which is where log lines can lose the trigger they belong to (a plain worker thread does
    # not carry the triggerer's per-trigger logging context).
    task_ids = held_tasks(2)
    watch = RunWatch(deployment, dag_id, run_id)
    deployment.trigger(dag_id, run_id, {"camb_task_ids": task_ids})
    watch.until(lambda w: w.all_deferred(["wait"]), timeout=120, what="the sensor to defer")
    deferred = watch.tasks["wait"].deferred_at or time.time()
    deployment.wait_for(
        lambda: min(status_calls_for(camb, task_ids, deferred).values()) >= 1,
        timeout=60,
        what="the triggerer to poll the tasks",
    )
    # Only now, so the worker's own check (whose log lines surely reach the task log) never sees them.
    faults_from = time.time()
    camb.fail_next("tts_status", 3, status=503)

    def answers() -> list[int]:
        return [
            e.status
            for e in camb.requests("tts_status")
            if e.time >= faults_from and e.path.rsplit("/", 1)[-1] in task_ids
        ]

    deployment.wait_for(
        lambda: answers().count(503) == 3 and answers()[-1] == 200,
        timeout=90,
        what="three 503 answers and a 200 after them",
    )
    camb.release(task_ids)
    state = watch.finish(timeout=120)
    assert state == "success", watch.summary()

    needle = "HTTP 503; retry"
    files = deployment.task_log_files(dag_id, run_id, "wait")
    in_task_log = {p.name: [line for line in p.read_text().splitlines() if needle in line] for p in files}
    triggerer_outputs = [
        p for p in [*deployment.stopped, *deployment.processes.values()] if p.name.startswith("triggerer")
    ]
    in_triggerer_output = {
        p.output.name: sum(needle in line for line in p.output.read_text(errors="replace").splitlines())
        for p in triggerer_outputs
    }
    found = sum(len(lines) for lines in in_task_log.values())
    print(
        f"\n[system] '{needle}' lines: {found} in the task's log files "
        f"({ {name: len(lines) for name, lines in in_task_log.items()} }), "
        f"{sum(in_triggerer_output.values())} in the triggerer's own output ({in_triggerer_output}); "
        f"status answers after the faults: {answers()}"
    )
    assert found >= 1, (
        f"the trigger's retry warnings did not reach the task's log files {sorted(in_task_log)}; "
        f"the triggerer's own output has {in_triggerer_output}"
    )
