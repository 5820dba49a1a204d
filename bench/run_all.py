"""Run the CambTTSToStorageOperator transfer benchmarks and write the figures.

``make bench`` (or ``.venv/bin/python bench/run_all.py``) runs the three transfer scenarios with
three interleaved repetitions and ``single_large_file`` (one 512 MiB file from a ``sendfile``
server: ``curl``, a plain ``requests`` copy and the operator, at least seven repetitions), then
the ``CambTextToSpeechOperator`` benchmark (``bench/tts_book.py``, scenario ``tts_book``), and
rewrites ``bench/results/latest.json``, ``bench/results/tts_book.json``, ``docs/performance.png``
and ``docs/performance.md``. ``--quick`` runs small sizes once, into ``bench/results/quick.json``,
leaving the docs alone (unless ``--docs``). ``--scenario tts_book`` alone runs only
``bench/tts_book.py``, which rewrites only its own section of the page.

The emulator, moto and the static file server each run in a process of their own; every measured
copy runs in a fresh process. Scratch files go to ``/tmp/camb-bench`` and are removed at the end,
also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench/_*.py helpers

import _docs_page
import _report
import _scenarios
import tts_book
from _procs import REPO_DIR, ServerProcess

MiB = 2**20
SCENARIOS = ("file_large", "many_small", "s3", "single_large_file", "tts_book")
#: Repetitions of single_large_file in a full run, whatever --reps says (when it says fewer): its
#: ratio is judged against a 10 % limit, and one run in four or five here is hit by a 2-3x outlier.
SINGLE_MIN_REPS = 7


@dataclass(frozen=True)
class Plan:
    """File sizes per scenario; scenario 2 always uses 1 MiB files."""

    file_sizes: list[int]
    s3_sizes: list[int]
    many_files: int
    single_size: int


# The sizes a user copies (up to 1 GiB), plus smaller ones to show memory is flat in the file size.
FULL = Plan(
    file_sizes=[10 * MiB, 100 * MiB, 1024 * MiB],
    s3_sizes=[16 * MiB, 64 * MiB, 256 * MiB],
    many_files=200,
    single_size=512 * MiB,
)
QUICK = Plan(
    file_sizes=[4 * MiB, 32 * MiB], s3_sizes=[8 * MiB, 32 * MiB], many_files=40, single_size=64 * MiB
)
SCRATCH_ROOT = Path("/tmp/camb-bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition, results/quick.json")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3; quick 1)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    parser.add_argument("--docs", action="store_true", help="also rewrite the docs page in --quick mode")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/ (results JSON only)")
    parser.add_argument(
        "--extra-concurrency",
        type=int,
        action="append",
        default=None,
        help="also run scenario 2 with this max_concurrency (default: 4, the old default)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile every operator run into the scratch dir"
    )
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the docs from bench/results/latest.json, no run"
    )
    parser.add_argument("--keep-scratch", action="store_true", help="keep the scratch dir (logs, profiles)")
    return parser.parse_args(argv)


def _run(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    plan = QUICK if args.quick else FULL
    reps = args.reps or (1 if args.quick else 3)
    chosen = args.scenario or list(SCENARIOS)
    logs = scratch / "logs"
    logs.mkdir()
    profile_dir = scratch / "profiles" if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir()
    with (
        ServerProcess("_serve_emulator.py", logs) as emulator,
        ServerProcess("_serve_moto.py", logs) as moto,
        ServerProcess("_serve_static.py", logs) as static,
    ):
        bench = _scenarios.Bench(emulator, moto.ready["endpoint_url"], scratch, logs, reps, profile_dir)
        if "file_large" in chosen:
            print("1. one large file to file://", flush=True)
            _scenarios.run_file_large(bench, plan.file_sizes)
        if "many_small" in chosen:
            print(f"2. {plan.many_files} files of 1 MiB to file://, 20 ms before each first byte", flush=True)
            extra = args.extra_concurrency if args.extra_concurrency is not None else [4]
            _scenarios.run_many_small(bench, plan.many_files, MiB, extra)
        if "s3" in chosen:
            print("3. one file to s3:// on moto", flush=True)
            _scenarios.run_s3(bench, plan.s3_sizes)
        if "single_large_file" in chosen:
            single_reps = reps if args.quick else max(reps, SINGLE_MIN_REPS)
            print(
                f"4. one {plan.single_size // MiB} MiB file from a sendfile server, {single_reps} reps",
                flush=True,
            )
            _scenarios.run_single_large_file(bench, static, plan.single_size, single_reps)
    return bench.records


def _command(argv: list[str] | None) -> str:
    words = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python bench/run_all.py", *words]) if words else "make bench"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _write_docs(result: dict[str, Any]) -> None:
    _report.plot(result["summary"], REPO_DIR / "docs" / "performance.png")
    _docs_page.write(result, REPO_DIR / "docs" / "performance.md")
    print("wrote docs/performance.png and docs/performance.md")


def _tts_book_argv(args: argparse.Namespace) -> list[str]:
    flags = ["quick", "docs", "no_docs", "profile", "keep_scratch"]
    words = [f"--{flag.replace('_', '-')}" for flag in flags if getattr(args, flag)]
    return words + (["--reps", str(args.reps)] if args.reps is not None else [])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        # e.g. after editing bench/performance_notes.md: no need to measure again.
        _write_docs(json.loads((REPO_DIR / "bench" / "results" / "latest.json").read_text()))
        return 0
    if args.scenario and set(args.scenario) == {"tts_book"}:
        # Its own emulator and results file; it rewrites only its section of the docs page.
        return tts_book.main(_tts_book_argv(args))
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so every server and scratch file goes.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=SCRATCH_ROOT))
    started = datetime.now(timezone.utc)
    load_before = _load()
    clock = time.monotonic()
    command = (
        "make bench"
        if not argv and len(sys.argv) == 1
        else " ".join(["bench/run_all.py", *(argv or sys.argv[1:])])
    )
    tts_result: dict[str, Any] | None = None
    try:
        records = _run(args, scratch)
        if "tts_book" in (args.scenario or SCENARIOS):
            tts_result = tts_book.measure(
                quick=args.quick,
                reps=args.reps,
                parts=["book", "rss"],
                work=scratch / "tts_book",
                profile=args.profile,
                command=command,
            )
    finally:
        if args.keep_scratch or args.profile:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    duration = time.monotonic() - clock
    result: dict[str, Any] = {
        "meta": {
            "started_utc": started.isoformat(timespec="seconds"),
            "duration_seconds": round(duration, 1),
            "command": command,
            "quick": args.quick,
            "reps": args.reps or (1 if args.quick else 3),
            "load_average_before": load_before,
            "load_average_after": _load(),
            "machine": _report.machine_info(),
            "versions": _report.package_versions(
                ["airflow-provider-camb", "apache-airflow", "requests", "urllib3", "s3fs", "boto3", "moto"],
                curl=True,
            ),
        },
        "summary": _report.summary(records),
        "records": records,
    }
    results_dir = REPO_DIR / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    out = results_dir / ("quick.json" if args.quick else "latest.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO_DIR)}")
    if tts_result is not None:
        # Saved before the docs are written: the page takes its section from this file.
        print(f"wrote {tts_book.save(tts_result).relative_to(REPO_DIR)}")
    if not args.no_docs and (args.docs or not args.quick):
        _write_docs(result)
    for target in result["summary"]["targets"]:
        verdict = "PASS" if target["passed"] else "FAIL"
        print(f"  {verdict}  {target['name']}: {target['value']} ({target['limit']})")
    if tts_result is not None:
        tts_book.print_targets(tts_result)
    print(f"done in {duration:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
