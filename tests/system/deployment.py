"""A real, throwaway Airflow 3 deployment for the system tests.

One :class:`AirflowDeployment` is an AIRFLOW_HOME in a temporary directory with a SQLite metadata
DB, and ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as separate
processes on 127.0.0.1 (LocalExecutor). Every process gets the same environment (JWT secret,
Fernet key, execution API URL, the Camb.ai connection), runs in its own session so it can be
stopped with everything it spawned (LocalExecutor workers, the trigger runner), and writes its
output to ``<home>/<name>.out``.

Nothing here imports Airflow: the deployment is driven through the ``airflow`` CLI and watched
through read-only queries of the SQLite DB.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")
PROBE_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = ("example_camb_tts_sensor.py", "example_camb_tts_to_storage.py")

#: Seconds between SIGTERM and SIGKILL when a process is stopped.
STOP_GRACE_SECONDS = 15.0
#: The triggerer's heartbeat, and how stale it may get before its triggers go to another one.
TRIGGERER_HEARTBEAT_SECONDS = 1
TRIGGERER_HEALTH_CHECK_THRESHOLD = 5


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowProcess:
    """One long-running ``airflow <command>``; its own session leader, so its PID is its group."""

    name: str
    popen: subprocess.Popen[bytes]
    output: Path
    started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        # The group holds what the command spawned (LocalExecutor workers and their task
        # processes, the triggerer's runner subprocess); they must not outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def group_alive(self) -> bool:
        """Whether any process of the group is still running (zombies do not count: the
        container's init may never reap what was reparented to it)."""
        self.popen.poll()
        return any(state != "Z" for state in _group_states(self.pid))

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.output.read_text(errors="replace")
        except OSError as err:
            return f"(no output: {err})"
        return "\n".join(text.splitlines()[-lines:])


def _group_states(pgid: int) -> list[str]:
    """The state letters (R, S, Z, ...) of every process in process group ``pgid``."""
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            states.append(fields[0])
    return states


class AirflowDeployment:
    """Start, drive and stop an Airflow deployment in ``home``.

    :param home: an empty directory to use as AIRFLOW_HOME.
    :param extra_env: more environment for every process (e.g. ``AIRFLOW_CONN_CAMB_DEFAULT``).
    :param example_dags: the files of ``example_dags/`` to deploy.
    :param probe_dags: whether to deploy the probe DAGs of ``tests/system/dags/`` too.
    """

    def __init__(
        self,
        home: Path,
        extra_env: dict[str, str],
        *,
        example_dags: Iterable[str] = EXAMPLE_DAGS,
        probe_dags: bool = True,
    ) -> None:
        self.home = home
        self.example_dags = tuple(example_dags)
        self.probe_dags = probe_dags
        self.dags_folder = home / "dags"
        self.db_path = home / "airflow.db"
        self.logs_folder = home / "logs"
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.processes: dict[str, AirflowProcess] = {}
        self.stopped: list[AirflowProcess] = []
        self._triggerers = 0
        self._triggerer: AirflowProcess | None = None
        self.startup_phases: dict[str, float] = {}
        #: names of the processes the last :meth:`stop` had to SIGKILL
        self.killed_at_stop: list[str] = []
        self.env = self._environment(extra_env)

    # -- environment ------------------------------------------------------------------------

    def _environment(self, extra_env: dict[str, str]) -> dict[str, str]:
        # The pytest process carries the unit tests' Airflow settings (tests/conftest.py): none
        # of them may leak into the deployment.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "NO_COLOR": "1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "32",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
                # Shared by every process: the executor signs task tokens, the API server checks
                # them; trigger kwargs are encrypted with the Fernet key by one process and read
                # by another.
                "AIRFLOW__CORE__FERNET_KEY": fernet_key,
                # 64 bytes: PyJWT warns about shorter HS512 keys.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                # Short loops and heartbeats so a test waits seconds, not minutes.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # A task's supervisor notices its process has exited only at the next wake-up of
                # its select(), up to this many seconds later; only then does the executor report
                # the try. A trigger that fires before that report is processed gets its resumed
                # TI failed as "state changed externally" (apache/airflow#67287, not fixed in
                # 3.3.2 for a TI already queued again), which a 5 s timer hit under load.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(TRIGGERER_HEARTBEAT_SECONDS),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
                # Log servers are skipped (--skip-serve-logs); if one starts anyway, it gets a
                # free port instead of 8793/8794 on every interface.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            }
        )
        # For A/B figures: run another checkout of the provider (e.g. one from `git archive`) in
        # the deployment; PYTHONPATH comes before the editable install's .pth entry.
        other_provider = os.environ.get("CAMB_SYSTEM_PROVIDER_SRC")
        if other_provider:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [other_provider, env.get("PYTHONPATH")]))
        env.update(extra_env)
        return env

    # -- lifecycle ----------------------------------------------------------------------------

    def fill_dags_folder(self) -> None:
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        for name in self.example_dags:
            shutil.copy(REPO_ROOT / "example_dags" / name, self.dags_folder / name)
        for path in sorted(PROBE_DAGS.glob("*.py")) if self.probe_dags else ():
            shutil.copy(path, self.dags_folder / path.name)

    def start(self, *, expected_dag_ids: Iterable[str], timeout: float = 90.0) -> None:
        """Migrate the DB, start the four components, wait until the DAGs are parsed and unpaused.

        :attr:`startup_phases` gets the seconds each step took.
        """
        clock = time.monotonic()

        def phase(name: str) -> None:
            nonlocal clock
            now = time.monotonic()
            self.startup_phases[name] = round(now - clock, 1)
            clock = now

        self.fill_dags_folder()
        self.cli("db", "migrate", timeout=120)
        # WAL lets readers (this test, the API server) run beside the writers without
        # "database is locked"; the mode is stored in the DB file, so every process gets it.
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            db.execute("PRAGMA journal_mode=WAL")
        phase("db migrate")
        self.spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port))
        self.spawn("scheduler", "scheduler", "--skip-serve-logs")
        self.spawn("dag-processor", "dag-processor")
        self.start_triggerer()
        deadline = time.monotonic() + timeout
        self.wait_for(self._api_healthy, timeout=deadline - time.monotonic(), what="the API server")
        phase("API server healthy")
        wanted = set(expected_dag_ids)
        self.wait_for(
            lambda: self._parsed(wanted), timeout=deadline - time.monotonic(), what=f"DAGs {sorted(wanted)}"
        )
        phase("DAGs parsed")
        self.wait_for(
            self.triggerer_heartbeating, timeout=deadline - time.monotonic(), what="a triggerer heartbeat"
        )
        phase("triggerer heartbeat")
        self.cli("dags", "unpause", "--treat-dag-id-as-regex", "--yes", ".*")
        phase("dags unpause")

    def spawn(self, name: str, *args: str) -> AirflowProcess:
        output = self.home / f"{name}.out"
        with output.open("ab") as sink:
            popen = subprocess.Popen(
                [str(AIRFLOW_BIN), *args],
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = AirflowProcess(name, popen, output)
        self.processes[name] = process
        return process

    @property
    def triggerer(self) -> AirflowProcess | None:
        """The triggerer started last, unless it was killed."""
        return self._triggerer

    def ensure_triggerer(self) -> None:
        """Start a triggerer if none is running (a test that killed one may have failed early)."""
        if self._triggerer is None or not self._triggerer.alive():
            self.start_triggerer()
            self.wait_for(self.triggerer_heartbeating, timeout=60, what="a triggerer heartbeat")

    def start_triggerer(self) -> AirflowProcess:
        self._triggerers += 1
        name = "triggerer" if self._triggerers == 1 else f"triggerer-{self._triggerers}"
        self._triggerer = self.spawn(name, "triggerer", "--skip-serve-logs")
        return self._triggerer

    def kill(self, process: AirflowProcess, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` to the process and what it spawned (its group); wait until all are gone."""
        process.signal_group(signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=STOP_GRACE_SECONDS)
        # The rest of the group dies a moment later than the leader.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while process.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.processes.pop(process.name, None)
        self.stopped.append(process)
        if self._triggerer is process:
            self._triggerer = None

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what is left after the grace period."""
        running = [p for p in reversed(list(self.processes.values())) if p.group_alive()]
        for process in running:
            process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(p.group_alive() for p in running):
            for process in running:
                process.popen.poll()
            time.sleep(0.2)
        self.killed_at_stop = []
        for process in running:
            if process.group_alive():
                self.killed_at_stop.append(process.name)
                process.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)
        self.stopped.extend(self.processes.values())
        self.processes.clear()

    def check_alive(self) -> None:
        dead = {name: p.popen.returncode for name, p in self.processes.items() if not p.alive()}
        if dead:
            raise AssertionError(f"Airflow processes exited: {dead}\n{self.tails()}")

    # -- diagnostics --------------------------------------------------------------------------

    def tails(self, lines: int = 40) -> str:
        parts = []
        for process in [*self.stopped, *self.processes.values()]:
            state = "running" if process.alive() else f"exit {process.popen.returncode}"
            parts.append(f"===== {process.name} (pid {process.pid}, {state}): {process.output} =====")
            parts.append(process.tail(lines))
        return "\n".join(parts)

    def scheduler_output(self) -> str:
        return self.home.joinpath("scheduler.out").read_text(errors="replace")

    # -- CLI ----------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``airflow <args>`` in the deployment's environment; its stdout, or AssertionError."""
        done = subprocess.run(
            [str(AIRFLOW_BIN), *args],
            cwd=self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited with {done.returncode}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> float:
        """``airflow dags trigger``; returns the wall time the CLI call finished."""
        self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf), "-o", "json")
        return time.time()

    # -- reading the metadata DB --------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        # A fresh read-only connection per query: never holds a snapshot or a lock for long.
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return rows[0]["state"] if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, sqlite3.Row]:
        rows = self.query(
            "SELECT task_id, map_index, state, try_number, next_method, trigger_id FROM task_instance "
            "WHERE dag_id = ? AND run_id = ?",
            dag_id,
            run_id,
        )
        return {
            row["task_id"] if row["map_index"] < 0 else f"{row['task_id']}[{row['map_index']}]": row
            for row in rows
        }

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {key: row["state"] for key, row in self.task_instances(dag_id, run_id).items()}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?",
            dag_id,
            run_id,
            task_id,
            key,
        )
        return json.loads(rows[0]["value"]) if rows else None

    def active_dag_runs(self) -> list[str]:
        rows = self.query("SELECT dag_id, run_id FROM dag_run WHERE state IN ('queued', 'running')")
        return [f"{row['dag_id']}/{row['run_id']}" for row in rows]

    def triggers(self) -> list[sqlite3.Row]:
        return self.query("SELECT id, classpath, triggerer_id FROM trigger")

    def triggerer_heartbeating(self) -> bool:
        rows = self.query(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND latest_heartbeat > datetime('now', ?)",
            f"-{TRIGGERER_HEALTH_CHECK_THRESHOLD} seconds",
        )
        return bool(rows)

    def triggerer_job_ids(self) -> list[int]:
        return [row["id"] for row in self.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")]

    def _parsed(self, dag_ids: set[str]) -> bool:
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        if errors:
            raise AssertionError(
                "DAG import errors: " + "; ".join(f"{r['filename']}: {r['stacktrace']}" for r in errors)
            )
        rows = self.query("SELECT dag.dag_id FROM dag JOIN serialized_dag USING (dag_id) WHERE NOT is_stale")
        return dag_ids <= {row["dag_id"] for row in rows}

    def _api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/execution/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    # -- waiting ------------------------------------------------------------------------------

    def wait_for(
        self,
        condition: Callable[[], Any],
        *,
        timeout: float,
        what: str | Callable[[], str],
        interval: float = 0.25,
    ) -> Any:
        """Call ``condition`` until it returns something truthy (returned) or ``timeout`` passes.

        :param what: what is waited for, for the error message (a callable is called at timeout).
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                result = condition()
            except sqlite3.OperationalError:  # "database is locked" while a writer commits
                result = None
            if result:
                return result
            if time.monotonic() >= deadline:
                text = what() if callable(what) else what
                raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {text}")
            time.sleep(interval)

    # -- logs -----------------------------------------------------------------------------------

    def task_log_files(self, dag_id: str, run_id: str, task_id: str) -> list[Path]:
        """Every log file of the task instance: ``attempt=N.log`` and its ``.trigger.<job>.log``."""
        folder = self.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(folder.rglob("attempt=*")) if folder.exists() else []
