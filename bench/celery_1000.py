"""Run a 1,000-task mapped DAG under CeleryExecutor against the Camb.ai emulator; print the figures.

``make bench-celery`` runs this with ``.venv-celery`` (a virtualenv of its own, with the Celery
provider). It needs ``redis-server`` on the PATH (the Makefile target installs it with apt).
Everything is local and thrown away at the end:

* a fresh ``AIRFLOW_HOME`` and DAG folder in a temporary directory, with the DAG of
  ``bench/celery/camb_celery_bench_dag.py``;
* the metadata database: SQLite in that directory (``--db sqlite``, the default) or a
  PostgreSQL cluster made with ``initdb`` there (``--db postgres``);
* ``redis-server`` on a free port as the Celery broker and result backend;
* ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and two
  ``airflow celery worker`` processes;
* the emulator, in this process (its journal gives the API calls by endpoint), seeded with
  ``--tasks`` TTS tasks that each answer ``PENDING`` once.

The DAG is triggered with ``airflow dags trigger``; when the run ends the script prints the wall
time, the API calls by endpoint, the biggest XCom values (bytes, from the metadata database) and
what landed in the destination folder. Every server binds 127.0.0.1 on a free port; every process
is started in a session of its own and stopped through its PID (its process group), also when the
run fails or is interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import create_engine, text

from airflow_provider_camb.testing import CambEmulator

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DAG_FILE = BENCH_DIR / "celery" / "camb_celery_bench_dag.py"
DAG_ID = "camb_celery_bench"
RUN_ID = "celery_bench"
POOL = "camb_api"
API_KEY = "bench-key"
BIN = Path(sys.executable).parent  # the virtualenv's bin/: airflow, celery
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


# Celery's line for each finished task run: "Task execute_workload[<id>] succeeded in 3.14s: None".
_SUCCEEDED = re.compile(r"Task execute_workload\[[^\]]+\] succeeded in ([0-9.]+)s")


class BenchError(RuntimeError):
    """The benchmark could not run or the DAG run failed."""


# -- processes --------------------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    stop_signal: int


@dataclass
class Stack:
    """The child processes, each the leader of its own session, stopped in reverse order."""

    log_dir: Path
    children: list[_Child] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], env: dict[str, str], stop_signal: int = signal.SIGTERM
    ) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.log_dir,
            # A session of its own: its PID is also its process group, so stopping it reaches the
            # children it forks (Celery pool processes, uvicorn workers, task runners) and nothing else.
            start_new_session=True,
        )
        self.children.append(_Child(name, proc, log_path, log, stop_signal))
        print(f"  started {name} (pid {proc.pid})", flush=True)
        return proc

    def check_alive(self) -> None:
        for child in self.children:
            code = child.proc.poll()
            if code is not None:
                raise BenchError(f"{child.name} exited with {code}:\n{tail(child.log_path)}")

    def stop_all(self) -> None:
        while self.children:
            child = self.children.pop()
            _stop_group(child.proc, child.stop_signal)
            child.log.close()


def _stop_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Ask the process group led by ``proc`` to stop, then kill what is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT)
    # Whatever outlived its leader (or a leader that ignored the signal) goes now.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Any, stack: Stack, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        if check():
            return
        time.sleep(0.5)
    raise BenchError(f"{what} not ready after {timeout:.0f} s")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def airflow_cli(args: list[str], env: dict[str, str], log_dir: Path, timeout: float = 300.0) -> str:
    name = "cli-" + "-".join(args[:2])
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        done = subprocess.run(
            [str(BIN / "airflow"), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=log_dir,
            timeout=timeout,
            check=False,
        )
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise BenchError(f"airflow {' '.join(args[:2])} exited {done.returncode}:\n{out}\n{tail(log_path)}")
    return out


# -- the metadata database ------------------------------------------------------------------


def start_postgres(stack: Stack, root: Path) -> str:
    """A throwaway PostgreSQL cluster on a free port; returns its SQLAlchemy URL."""
    initdb = shutil.which("initdb") or _pg_bin("initdb")
    postgres = shutil.which("postgres") or _pg_bin("postgres")
    data = root / "pgdata"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as the postgres user, who must own its files.
        import pwd

        user = pwd.getpwnam("postgres")
        for path in (root, data):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    done = subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"initdb failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")
    port = free_port()
    stack.start(
        "postgres",
        [
            *prefix,
            postgres,
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
            "-c",
            "fsync=off",
        ],
        {**os.environ},
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for clients to leave.
        stop_signal=signal.SIGINT,
    )
    wait_until("postgres", lambda: port_open(port), stack)
    url = f"postgresql+psycopg://airflow@127.0.0.1:{port}/postgres"
    # Accepting TCP connections comes a moment before accepting logins.
    engine = create_engine(url)
    wait_until("postgres logins", lambda: _can_connect(engine), stack)
    engine.dispose()
    return url


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise BenchError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return str(found[-1])


def _can_connect(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


# -- figures ----------------------------------------------------------------------------------


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def ti_states(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT state, count(*) FROM task_instance WHERE dag_id = :d AND run_id = :r GROUP BY state"
            ),
            {"d": DAG_ID, "r": RUN_ID},
        ).all()
    return Counter({str(state or "none"): int(n) for state, n in rows})


def run_state(engine: Engine) -> tuple[str | None, datetime | None, datetime | None]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT state, start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r"),
            {"d": DAG_ID, "r": RUN_ID},
        ).first()
    if row is None:
        return None, None, None
    return row[0], _as_datetime(row[1]), _as_datetime(row[2])


def dag_serialized(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT count(*) FROM serialized_dag WHERE dag_id = :d"), {"d": DAG_ID}
            ).first()
    except Exception:  # the table exists only once the database is migrated
        return False
    return bool(row and row[0])


def task_phases(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT task_id, count(*), min(start_date), max(end_date), max(try_number) "
                "FROM task_instance WHERE dag_id = :d AND run_id = :r GROUP BY task_id"
            ),
            {"d": DAG_ID, "r": RUN_ID},
        ).all()
    phases = []
    for task_id, count, start, end, tries in rows:
        first, last = _as_datetime(start), _as_datetime(end)
        phases.append(
            {
                "task_id": task_id,
                "instances": int(count),
                "start": first,
                "seconds": (last - first).total_seconds() if first and last else None,
                "max_try_number": int(tries or 0),
            }
        )
    return sorted(phases, key=lambda p: p["start"] or datetime.max.replace(tzinfo=timezone.utc))


def xcom_sizes(engine: Engine, top: int = 5) -> dict[str, Any]:
    # Bytes of each stored value as the database holds it (JSON text).
    size = "length(CAST(value AS BLOB))" if engine.dialect.name == "sqlite" else "octet_length(value::text)"
    params = {"d": DAG_ID, "r": RUN_ID}
    with engine.connect() as conn:
        biggest = conn.execute(
            text(
                f"SELECT task_id, map_index, key, {size} AS n FROM xcom "
                "WHERE dag_id = :d AND run_id = :r ORDER BY n DESC LIMIT :top"
            ),
            {**params, "top": top},
        ).all()
        by_task = conn.execute(
            text(
                f"SELECT task_id, key, count(*), sum({size}), max({size}) FROM xcom "
                "WHERE dag_id = :d AND run_id = :r GROUP BY task_id, key ORDER BY task_id, key"
            ),
            params,
        ).all()
    return {
        "biggest": [
            {"task_id": t, "map_index": int(m), "key": k, "bytes": int(n or 0)} for t, m, k, n in biggest
        ],
        "by_task": [
            {"task_id": t, "key": k, "rows": int(c), "bytes": int(s or 0), "max_bytes": int(x or 0)}
            for t, k, c, s, x in by_task
        ],
    }


def api_calls(emu: CambEmulator) -> dict[str, dict[str, int]]:
    calls: dict[str, Counter[str]] = {}
    for entry in emu.journal:
        calls.setdefault(entry.endpoint, Counter())[str(entry.status)] += 1
    return {endpoint: dict(sorted(statuses.items())) for endpoint, statuses in sorted(calls.items())}


def worker_runs(log_dir: Path, workers: int) -> dict[str, Any]:
    """Task runs each Celery worker finished, and how long one took, from the workers' logs."""
    per_worker: dict[str, int] = {}
    seconds: list[float] = []
    for number in range(1, workers + 1):
        found = _SUCCEEDED.findall(tail(log_dir / f"worker{number}.log", limit=1 << 30))
        per_worker[f"worker{number}"] = len(found)
        seconds.extend(float(s) for s in found)
    return {
        "per_worker": per_worker,
        "total": len(seconds),
        "median_seconds": round(statistics.median(seconds), 2) if seconds else None,
        "max_seconds": round(max(seconds), 2) if seconds else None,
    }


def failed_task_logs(home: Path, limit: int = 3) -> str:
    logs = sorted((home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    hits = [p for p in logs if "error" in p.read_text(errors="replace").lower()][:limit]
    return "\n".join(f"--- {p}\n{tail(p, 3000)}" for p in hits)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for dist in ("apache-airflow", "apache-airflow-providers-celery", "celery", "airflow-provider-camb"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "not installed"
    redis = shutil.which("redis-server")
    if redis:
        # "Redis server v=7.0.15 sha=..." -> "7.0.15"
        out = subprocess.run([redis, "--version"], capture_output=True, text=True, check=False).stdout
        found["redis-server"] = next((w[2:] for w in out.split() if w.startswith("v=")), out.strip())
    return found


# -- the run ----------------------------------------------------------------------------------


def airflow_env(
    home: Path, dags: Path, db_url: str, redis_port: int, api_port: int, emu: CambEmulator, n_tasks: int
) -> dict[str, str]:
    from cryptography.fernet import Fernet

    # Nothing of the caller's Airflow setup may leak in.
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) or k == "AIRFLOW_HOME")
    }
    broker = f"redis://127.0.0.1:{redis_port}"
    api = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, n_tasks)),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CELERY__BROKER_URL": f"{broker}/0",
            # Results in Redis too: the metadata database then serves Airflow alone.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"{broker}/1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            # One secret for every process: the scheduler signs the tokens the API server checks.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW_CONN_CAMB_DEFAULT": emu.connection_uri_json(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if db_url.startswith("postgresql+psycopg"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = db_url.replace("+psycopg", "+psycopg_async", 1)
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="camb-celery-bench-"))
    home, dags, out, logs = root / "home", root / "dags", root / "audio", root / "logs"
    for folder in (home, dags, out, logs):
        folder.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    pg_root = Path(tempfile.mkdtemp(prefix="camb-celery-pg-")) if args.db == "postgres" else None
    stack = Stack(logs)
    emu = CambEmulator(api_key=API_KEY)
    ok = False
    figures: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "tasks": args.tasks,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "pool_slots": args.pool_slots,
        "db": args.db,
        "cpus": os.cpu_count(),
        "versions": versions(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        print(f"Scratch directory: {root}", flush=True)
        emu.start()
        emu.url_ttl = 6 * 3600.0  # no URL may expire mid-run: refreshes would add API calls
        task_ids = emu.add_tts_tasks(args.tasks, pending_polls=1, size_bytes=args.size_bytes)

        redis_port = free_port()
        redis = shutil.which("redis-server")
        if redis is None:
            raise BenchError("redis-server is not installed (apt-get install redis-server)")
        stack.start(
            "redis",
            [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            {**os.environ},
        )
        wait_until("redis", lambda: port_open(redis_port), stack)

        if args.db == "postgres":
            assert pg_root is not None
            db_url = start_postgres(stack, pg_root)
        else:
            db_url = f"sqlite:///{home / 'airflow.db'}"
        api_port = free_port()
        env = airflow_env(home, dags, db_url, redis_port, api_port, emu, args.tasks)

        started = time.monotonic()
        airflow_cli(["db", "migrate"], env, logs, timeout=600)
        airflow_cli(["pools", "set", POOL, str(args.pool_slots), "Camb.ai API"], env, logs)
        engine = create_engine(db_url)

        stack.start(
            "api-server",
            [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(api_port), "-w", "2"],
            env,
        )
        stack.start("scheduler", [str(BIN / "airflow"), "scheduler", "--skip-serve-logs"], env)
        stack.start("dag-processor", [str(BIN / "airflow"), "dag-processor"], env)
        stack.start("triggerer", [str(BIN / "airflow"), "triggerer", "--skip-serve-logs"], env)
        for number in range(1, args.workers + 1):
            stack.start(
                f"worker{number}",
                [
                    str(BIN / "airflow"),
                    "celery",
                    "worker",
                    "--skip-serve-logs",
                    "--concurrency",
                    str(args.concurrency),
                    "--celery-hostname",
                    f"camb-bench-{number}@localhost",
                ],
                env,
            )
        wait_until("api-server", lambda: http_ok(f"http://127.0.0.1:{api_port}/api/v2/monitor/health"), stack)
        wait_until("the DAG in the database", lambda: dag_serialized(engine), stack)
        for number in range(1, args.workers + 1):
            log_path = logs / f"worker{number}.log"
            wait_until(f"worker{number}", lambda p=log_path: " ready." in tail(p, 100_000), stack)
        figures["startup_seconds"] = round(time.monotonic() - started, 1)
        print(f"Stack up in {figures['startup_seconds']} s; triggering {args.tasks} tasks.", flush=True)

        conf = {"camb_task_ids": task_ids, "batch_size": args.batch_size, "destination": out.as_uri() + "/"}
        t0 = time.monotonic()
        airflow_cli(["dags", "trigger", DAG_ID, "--run-id", RUN_ID, "--conf", json.dumps(conf)], env, logs)
        figures["trigger_cli_seconds"] = round(time.monotonic() - t0, 1)

        peak: Counter[str] = Counter()
        last_report = 0.0
        state: str | None = None
        while True:
            stack.check_alive()
            elapsed = time.monotonic() - t0
            if elapsed > args.timeout:
                raise BenchError(
                    f"the DAG run did not finish within {args.timeout:.0f} s: {dict(ti_states(engine))}"
                )
            state, run_start, run_end = run_state(engine)
            states = ti_states(engine)
            for name, n in states.items():
                peak[name] = max(peak[name], n)
            if elapsed - last_report >= 30:
                last_report = elapsed
                print(f"  {elapsed:6.0f} s  run={state}  {dict(sorted(states.items()))}", flush=True)
            if state in ("success", "failed"):
                break
            time.sleep(1.0)
        figures["wall_seconds"] = round(time.monotonic() - t0, 1)
        figures["run_seconds"] = (
            round((run_end - run_start).total_seconds(), 1) if run_start and run_end else None
        )
        figures["run_state"] = state
        figures["ti_states"] = dict(ti_states(engine))
        figures["peak_ti_states"] = dict(peak)
        figures["phases"] = [
            {**p, "start": p["start"].isoformat() if p["start"] else None} for p in task_phases(engine)
        ]
        figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        figures["api_calls"] = api_calls(emu)
        figures["xcom"] = xcom_sizes(engine)
        files = [p for p in out.iterdir() if p.is_file()]
        figures["files"] = {"count": len(files), "bytes": sum(p.stat().st_size for p in files)}
        engine.dispose()
        if state != "success":
            print(failed_task_logs(home), file=sys.stderr)
            raise BenchError(f"the DAG run ended {state}: {figures['ti_states']}")
        if len(files) != args.tasks:
            raise BenchError(f"{len(files)} files in {out}, expected {args.tasks}")
        ok = True
        return figures
    finally:
        print("Stopping every process ...", flush=True)
        stack.stop_all()
        emu.stop()
        # Counted once the workers have stopped: a worker logs a task run's end a moment after the
        # task has told Airflow, so the last runs of a finished DAG run may not be logged yet.
        figures["worker_runs"] = worker_runs(logs, args.workers)
        if pg_root is not None:
            shutil.rmtree(pg_root, ignore_errors=True)
        if args.keep or not ok:
            # A failed run keeps its logs and database for a post-mortem.
            print(f"Kept {root} (logs in {logs})", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def print_figures(figures: dict[str, Any]) -> None:
    print()
    fig = figures
    print(
        f"{fig['tasks']} Camb.ai TTS tasks, batch size {fig['batch_size']}, CeleryExecutor with "
        f"{fig['workers']} workers x {fig['concurrency']}, pool {POOL} = {fig['pool_slots']} slots, "
        f"{fig['db']} metadata DB, {fig['cpus']} CPUs, {fig['date']}"
    )
    print(
        f"Wall time, `airflow dags trigger` to run {fig['run_state']}: {fig['wall_seconds']} s "
        f"(the CLI itself {fig['trigger_cli_seconds']} s; run start to end in the DB: "
        f"{fig['run_seconds']} s; stack start-up {fig['startup_seconds']} s)"
    )
    print(f"Versions: {fig['versions']}")
    print(
        f"Load average (1, 5, 15 min) before: {fig['load_average_before']}, "
        f"after: {fig['load_average_after']}"
    )
    print("Task phases (first start to last end):")
    for phase in figures["phases"]:
        print(
            f"  {phase['task_id']:<14} {phase['instances']:>5} instance(s)  {phase['seconds']:>8.1f} s  "
            f"max try_number {phase['max_try_number']}"
        )
    runs = fig["worker_runs"]
    print(
        f"Task runs on the Celery workers: {runs['total']} {runs['per_worker']}, "
        f"median {runs['median_seconds']} s, longest {runs['max_seconds']} s"
    )
    print(f"Peak task instances by state: {dict(sorted(figures['peak_ti_states'].items()))}")
    print("API calls by endpoint (HTTP status: count):")
    for endpoint, statuses in figures["api_calls"].items():
        print(f"  {endpoint:<14} {sum(statuses.values()):>6}  {statuses}")
    print("Biggest XCom values (bytes as stored):")
    for row in figures["xcom"]["biggest"]:
        print(f"  {row['task_id']}[{row['map_index']}] {row['key']}: {row['bytes']:,}")
    print("XCom by task and key (rows, total bytes, biggest):")
    for row in figures["xcom"]["by_task"]:
        print(
            f"  {row['task_id']} {row['key']}: {row['rows']} rows, "
            f"{row['bytes']:,} B, max {row['max_bytes']:,} B"
        )
    print(f"Files written: {figures['files']['count']}, {figures['files']['bytes']:,} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="Camb.ai TTS tasks to seed and map over")
    parser.add_argument("--batch-size", type=int, default=1, help="task IDs per mapped sensor")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers")
    parser.add_argument("--concurrency", type=int, default=8, help="task slots per Celery worker")
    parser.add_argument("--pool-slots", type=int, default=16, help=f"slots of the {POOL} pool")
    parser.add_argument("--size-bytes", type=int, default=32 * 1024, help="size of each audio file")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite", help="metadata database")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the DAG run may take")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, DB)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.batch_size < 1:
        parser.error("--tasks and --batch-size must be 1 or more")
    # SIGTERM (e.g. from make or CI) must still stop the children: run the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        figures = run(args)
    except BenchError as err:
        print(f"bench-celery failed: {err}", file=sys.stderr)
        return 1
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
