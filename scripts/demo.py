"""`make demo`: the end-to-end example DAG, for real, offline, in about a minute.

Starts the bundled Camb.ai API emulator on a free loopback port, seeds a dozen TTS tasks that
finish after a few polls, runs ``example_camb_tts_to_storage`` with ``airflow dags test`` on the
embedded SQLite DB (sensor, deferred -> bulk results -> transfer to ``file://``), and prints
what landed where. The emulator is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_camb.testing import CambEmulator

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_camb_tts_to_storage"
TASK_COUNT = 12


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-home", type=Path, default=REPO / "airflow_home")
    parser.add_argument("--output", type=Path, default=REPO / "demo_output")
    args = parser.parse_args(argv)
    airflow_home: Path = args.airflow_home.resolve()
    output: Path = args.output.resolve()
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = _airflow_env(airflow_home)

    _step(f"Preparing the Airflow metadata DB (SQLite in {_rel(airflow_home)})")
    migrate = _run_airflow(["db", "migrate"], env, airflow_home / "db-migrate.log")
    if migrate != 0:
        return _fail(f"`airflow db migrate` failed; see {_rel(airflow_home / 'db-migrate.log')}")

    with CambEmulator(api_key="demo-api-key") as emulator:
        # Chapters of different lengths that finish at different times, like a real batch.
        task_ids = [
            task_id
            for chapter in range(TASK_COUNT)
            for task_id in emulator.add_tts_tasks(
                1, pending_polls=2 + chapter % 3, duration_seconds=1.5 + 0.75 * chapter
            )
        ]
        _step(f"Camb.ai emulator at {emulator.base_url} with {len(task_ids)} TTS tasks in progress")
        env["AIRFLOW_CONN_CAMB_DEFAULT"] = emulator.connection_uri_json()
        conf = {"camb_task_ids": task_ids, "destination": output.as_uri() + "/"}
        log_path = airflow_home / "demo-dag-run.log"
        _step(f"Running `airflow dags test {DAG_ID}` (Airflow's own log: {_rel(log_path)})")
        started = time.monotonic()
        exit_code = _run_airflow(["dags", "test", DAG_ID, "--conf", json.dumps(conf)], env, log_path)
        elapsed = time.monotonic() - started
        if exit_code != 0:
            _print_tail(log_path)
            return _fail(f"the DAG run failed (exit code {exit_code}); full log: {_rel(log_path)}")
        return _summarise(emulator, task_ids, output, elapsed)


def _airflow_env(airflow_home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
    )
    return env


def _run_airflow(arguments: list[str], env: dict[str, str], log_path: Path) -> int:
    airflow = Path(sys.executable).with_name("airflow")
    with log_path.open("w") as log:
        return subprocess.call([str(airflow), *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)


def _summarise(emulator: CambEmulator, task_ids: list[str], output: Path, elapsed: float) -> int:
    import soundfile

    api_calls = [entry for entry in emulator.journal if entry.path.startswith("/apis/")]
    # A ranged GET of one byte is a size check of a file already there, not a download.
    downloads = [
        entry
        for entry in emulator.journal
        if entry.endpoint == "download" and entry.method == "GET" and entry.range is None
    ]
    print()
    print(f"{'run ID':>8}  {'file':<28} {'size':>10}  {'duration':>8}")
    missing = []
    for task_id in task_ids:
        run_id = emulator.run_id_for_task(task_id)
        candidates = sorted(output.glob(f"{run_id}.*")) if run_id else []
        if not candidates:
            missing.append(run_id or task_id)
            continue
        path = candidates[0]
        info = soundfile.info(str(path))
        print(f"{run_id:>8}  {_rel(path):<28} {path.stat().st_size:>10,}  {info.duration:>7.2f}s")
    print()
    print(
        f"{len(task_ids) - len(missing)} audio files in {_rel(output)} after {elapsed:.0f} s; "
        f"{len(api_calls)} Camb.ai API calls "
        f"({len(emulator.requests('tts_status'))} status polls, {len(emulator.requests('tts_results'))} bulk "
        f"result calls), {len(downloads)} downloads."
    )
    if not downloads:
        print("Nothing was downloaded: every file was already there from an earlier run (idempotent re-run).")
    print(f"Play one: `ffplay {_rel(output)}/<run ID>.flac` or any audio player that reads FLAC.")
    if missing:
        return _fail(f"no file for {missing}")
    return 0


def _print_tail(log_path: Path, lines: int = 40) -> None:
    print("".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-lines:]), file=sys.stderr)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _fail(message: str) -> int:
    print(f"demo failed: {message}", file=sys.stderr)
    return 1


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
