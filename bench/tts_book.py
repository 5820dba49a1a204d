"""Benchmark ``CambTextToSpeechOperator``: a whole book against its ideal time, memory against text length.

``.venv/bin/python bench/tts_book.py`` runs both parts and rewrites ``bench/results/tts_book.json``
and the text-to-speech section of ``docs/performance.md``; ``make bench`` runs it after the
transfer benchmarks. ``--quick`` runs a 20-chapter book and the two smaller texts once, into
``bench/results/tts_book_quick.raw.json``, leaving the docs alone (unless ``--docs``);
``--render-only`` rewrites the docs section from the saved result without measuring.

1. **Wall time vs ideal.** A seeded, generated 100-chapter book (3,000-8,000 characters a
   chapter, so most chapters are two or three segments), 50 ms before every stream answer,
   FLAC, the operator's default ``max_concurrency``. In each repetition, in a rotating order,
   a fresh process streams every segment once, one after the other (``sequential``), and
   another fresh process runs the operator on the whole book. Ideal = the sum of the
   sequential stream times / ``max_concurrency``; reported: operator wall / ideal of the same
   repetition. One more, instrumented operator run (not counted) shows where the time goes.
2. **Peak RSS vs text length.** One text of 10k, 100k and 1M characters, each in a fresh
   process, repeated in rotating order; peak RSS growth over ``execute()``.

The emulator runs in a process of its own (``_serve_emulator.py``), so its CPU and memory are not
the client's. Scratch files go to ``/tmp/camb-bench`` and are removed, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench/_*.py helpers

import _tts_book_page
from _procs import BENCH_DIR, PYTHON, REPO_DIR, ChildError, ServerProcess, _tail
from _report import Target, machine_info, package_versions

from airflow_provider_camb.speech.segments import split_text
from airflow_provider_camb.testing._audio import make_audio

MiB = 2**20
SEED = 20298
LATENCY_SECONDS = 0.05
#: Seconds of audio per character. The emulator's default (0.06, a realistic speaking rate)
#: would make the 1M-character text 16 hours of audio (2.6 GB); 0.005 keeps it at 83 minutes
#: (about 220 MB of FLAC), still more than three times the memory limit, so a client holding the
#: audio in memory could not pass.
SECONDS_PER_CHAR = 0.005
SAMPLE_RATE = 22050  # the emulator's rate for the default (flash) model
TIME_RATIO_LIMIT = 1.2
RSS_GROWTH_LIMIT = 64 * MiB
CLIENT_TIMEOUT_SECONDS = 900.0
SCRATCH_ROOT = Path("/tmp/camb-bench")
RESULTS_DIR = REPO_DIR / "bench" / "results"
DOCS_PAGE = REPO_DIR / "docs" / "performance.md"


@dataclass(frozen=True)
class Plan:
    chapters: int
    book_reps: int
    rss_sizes: list[int]
    rss_reps: int


FULL = Plan(chapters=100, book_reps=5, rss_sizes=[10_000, 100_000, 1_000_000], rss_reps=3)
QUICK = Plan(chapters=20, book_reps=1, rss_sizes=[10_000, 100_000], rss_reps=1)


# -- the texts -------------------------------------------------------------------------------

_VOCABULARY = (
    "the of and to in that it was he for on as with his at by from they she her had which you "
    "be this not but all were when we there been one their said would what so up out if about "
    "into who them some could him time than then now only its over like also back after two how "
    "our first well way even new want because any these give day most us great little old man "
    "house river morning letter window garden road evening silence station winter summer light "
    "shadow question answer voice stranger doctor captain mother father village city harbour "
    "remembered whispered walked turned waited laughed listened carried opened noticed believed "
    "slowly quietly suddenly perhaps almost never always already certainly carefully"
)
_WORDS = _VOCABULARY.split()
_NAMES = ("Anna", "Thomas", "Mrs. Hale", "Dr. Reyes", "the captain", "Elena", "old Mr. Price", "Jonah")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 24))]
    if rng.random() < 0.4:
        words.insert(rng.randint(0, len(words)), rng.choice(_NAMES))
    if len(words) > 10 and rng.random() < 0.6:
        words[rng.randint(3, len(words) - 4)] += ","
    body = " ".join(words)
    body = body[0].upper() + body[1:]
    end = rng.choices([".", "?", "!", "..."], weights=[80, 10, 6, 4])[0]
    if rng.random() < 0.15:
        return f'"{body}{end}" {rng.choice(_NAMES)} said.'
    return body + end


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 8)))


def make_book(chapters: int, seed: int = SEED) -> dict[str, str]:
    """``{"chapter-001": text, ...}``: English-like prose, 3,000-8,000 characters a chapter."""
    rng = random.Random(seed)
    book = {}
    for number in range(1, chapters + 1):
        target = rng.randint(3000, 8000)
        paragraphs = [f"Chapter {number}."]
        length = len(paragraphs[0])
        while True:
            paragraph = _paragraph(rng)
            if length + 2 + len(paragraph) > target and length >= 3000:
                break
            paragraphs.append(paragraph)
            length += 2 + len(paragraph)
        book[f"chapter-{number:03d}"] = "\n\n".join(paragraphs)
    return book


def make_text(chars: int, seed: int = SEED) -> str:
    """Prose of exactly ``chars`` characters, in paragraphs."""
    rng = random.Random(seed + chars)
    paragraphs: list[str] = []
    length = 0
    while length < chars:
        paragraphs.append(_paragraph(rng))
        length += len(paragraphs[-1]) + 2
    text = "\n\n".join(paragraphs)[:chars]
    return text[:-1] + "." if text[-1].isspace() else text


def expected_shape(texts: dict[str, str]) -> tuple[int, dict[str, float], int]:
    """The segment count, each text's duration and the bytes the emulator streams for them."""
    segments = 0
    streamed = 0
    durations = {}
    for name, text in texts.items():
        frames = 0
        for piece in split_text(text):
            # The emulator's own layout of the audio it answers (seeded by the text; no audio
            # is generated here).
            audio = make_audio(
                zlib.crc32(piece.encode()),
                audio_format="flac",
                sample_rate=SAMPLE_RATE,
                duration_seconds=len(piece) * SECONDS_PER_CHAR,
            )
            segments += 1
            frames += audio.n_samples
            streamed += audio.size
        durations[name] = frames / SAMPLE_RATE
    return segments, durations, streamed


# -- running ---------------------------------------------------------------------------------


@dataclass
class Bench:
    emulator: ServerProcess
    work: Path
    logs: Path
    profile: bool
    _emulator_cpu: float = 0.0

    @property
    def env(self) -> dict[str, str]:
        return {
            "AIRFLOW_HOME": str(self.work / "airflow_home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW_CONN_CAMB_DEFAULT": self.emulator.ready["conn"],
            "PYTHONUNBUFFERED": "1",
        }

    def client(self, spec: dict[str, Any], label: str) -> dict[str, Any]:
        """Run ``_tts_client.py`` on ``spec`` in a fresh interpreter; return its JSON line."""
        if self.profile and spec["kind"] == "operator":
            spec = {**spec, "profile": str(self.work / f"{label}.prof")}
        log_path = self.logs / f"{label}.log"
        with log_path.open("wb") as log:
            proc = subprocess.run(
                [PYTHON, str(BENCH_DIR / "_tts_client.py"), json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, **self.env},
                cwd=REPO_DIR,
                timeout=CLIENT_TIMEOUT_SECONDS,
                check=False,
            )
        if proc.returncode != 0:
            raise ChildError(f"{label}: exited {proc.returncode}:\n{_tail(log_path)}")
        result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        return result

    def streams(self) -> dict[str, Any]:
        """The stream calls the emulator saw since the last call (and forget them), and the CPU
        seconds it used meanwhile (``emulator_cpu``)."""
        seen = self.emulator.call(op="streams")
        seen["emulator_cpu"] = seen["cpu_seconds"] - self._emulator_cpu
        self._emulator_cpu = seen["cpu_seconds"]
        return seen


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ChildError(message)


def _rotated(items: list[Any], rep: int) -> list[Any]:
    shift = rep % len(items)
    return items[shift:] + items[:shift]


def _check_output(
    bench: Bench, label: str, result: dict[str, Any], folder: Path, segments: int, durations: dict[str, float]
) -> None:
    """Every call made once, every file there, whole and as long as its text asks for."""
    seen = bench.streams()
    result["emulator_cpu"] = seen["emulator_cpu"]
    _expect(
        seen["count"] == segments, f"{label}: the emulator saw {seen['count']} stream calls, not {segments}"
    )
    _expect(seen["statuses"] == [200], f"{label}: stream answers with status {seen['statuses']}")
    if "files" not in result:
        return
    # Hidden entries (the staging folder) may stay, but must hold no audio any more.
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    left = [str(p) for hidden in folder.glob(".*") for p in hidden.rglob("*") if p.is_file()]
    _expect(files == sorted(f"{name}.flac" for name in durations), f"{label}: {folder} holds {files[:5]}...")
    _expect(not left, f"{label}: staged files left behind: {left[:3]}")
    for name, expected in durations.items():
        item = result["files"][name]
        _expect(
            abs(item["duration"] - expected) <= 0.001,
            f"{label}: {name} is {item['duration']} s, not {expected}",
        )
        _expect(item["bytes"] == (folder / f"{name}.flac").stat().st_size, f"{label}: {name} size differs")
    _expect(sum(item["segments"] for item in result["files"].values()) == segments, f"{label}: segment count")


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run_book(bench: Bench, plan: Plan) -> dict[str, Any]:
    texts = make_book(plan.chapters)
    segments, durations, streamed = expected_shape(texts)
    texts_file = bench.work / "book.json"
    texts_file.write_text(json.dumps(texts))
    bench.emulator.call(op="seconds_per_char", value=SECONDS_PER_CHAR)
    bench.emulator.call(op="stream_latency", seconds=LATENCY_SECONDS)
    bench.streams()
    chars = sum(len(text) for text in texts.values())
    print(
        f"1. book: {len(texts)} chapters, {chars:,} characters, {segments} segments, "
        f"{LATENCY_SECONDS * 1000:.0f} ms before each stream answer",
        flush=True,
    )
    reps: list[dict[str, Any]] = []
    for rep in range(plan.book_reps):
        row: dict[str, Any] = {"rep": rep, "load_1min": round(os.getloadavg()[0], 2)}
        for candidate in _rotated(["sequential", "operator"], rep):
            folder = bench.work / f"book-{candidate}-{rep}"
            folder.mkdir()
            os.sync()  # the previous run's dirty pages are flushed now, not during this one
            spec = {"kind": candidate, "texts_file": str(texts_file), "destination": str(folder)}
            if candidate == "sequential":
                spec |= {
                    "base_url": bench.emulator.ready["base_url"],
                    "api_key": bench.emulator.ready["api_key"],
                }
            label = f"book-{candidate}-{rep}"
            try:
                result = bench.client(spec, label)
                _check_output(bench, label, result, folder, segments, durations)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            if candidate == "sequential":
                times = result["stream_times"]
                _expect(result["bytes"] == streamed, f"{label}: read {result['bytes']} bytes, not {streamed}")
                row |= {
                    "sequential_seconds": result["seconds"],
                    "stream_sum": sum(times),
                    "stream_median": statistics.median(times),
                    "stream_min": min(times),
                    "stream_max": max(times),
                    "audio_bytes": result["bytes"],
                    "sequential_cpu": result["cpu_seconds"],
                    "sequential_emulator_cpu": result["emulator_cpu"],
                }
            else:
                row |= {
                    "operator_seconds": result["seconds"],
                    "operator_peak_rss_growth": result["peak_rss_growth"],
                    "max_concurrency": result["max_concurrency"],
                    "warm_up_seconds": result["warm_up_seconds"],
                    "output_bytes": result["bytes"],
                    "operator_cpu": result["cpu_seconds"],
                    "operator_emulator_cpu": result["emulator_cpu"],
                }
        row["ideal_seconds"] = row["stream_sum"] / row["max_concurrency"]
        row["ratio"] = row["operator_seconds"] / row["ideal_seconds"]
        print(
            f"  rep {rep}: sequential streams {row['stream_sum']:.2f} s"
            f" -> ideal {row['ideal_seconds']:.2f} s;"
            f" operator {row['operator_seconds']:.2f} s = {row['ratio']:.2f}x ideal",
            flush=True,
        )
        reps.append(row)
    # One more operator run with its methods timed (not counted): where the wall time goes.
    folder = bench.work / "book-instrumented"
    folder.mkdir()
    os.sync()
    try:
        spec = {
            "kind": "operator",
            "texts_file": str(texts_file),
            "destination": str(folder),
            "instrument": True,
        }
        result = bench.client(spec, "book-instrumented")
        _check_output(bench, "book-instrumented", result, folder, segments, durations)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    breakdown = result["breakdown"]
    print(
        f"  instrumented: wall {breakdown['wall']:.2f} s, before the first stream "
        f"{breakdown['before_first_stream']:.3f} s, {breakdown['streams_in_flight']:.2f} streams in flight "
        f"on average, median stream {breakdown['stream_median'] * 1000:.1f} ms, after the last stream "
        f"{breakdown['after_last_stream']:.3f} s",
        flush=True,
    )
    ratios = [row["ratio"] for row in reps]
    return {
        "chapters": len(texts),
        "characters": chars,
        "segments": segments,
        "chapter_chars": _spread([len(text) for text in texts.values()]),
        "latency_seconds": LATENCY_SECONDS,
        "seconds_per_char": SECONDS_PER_CHAR,
        "audio_seconds": sum(durations.values()),
        "streamed_bytes": streamed,
        "output_bytes": reps[0]["output_bytes"],
        "reps": reps,
        "ratio": _spread(ratios),
        "operator_seconds": _spread([row["operator_seconds"] for row in reps]),
        "ideal_seconds": _spread([row["ideal_seconds"] for row in reps]),
        "stream_median": _spread([row["stream_median"] for row in reps]),
        "instrumented": {
            **breakdown,
            "client_cpu": result["cpu_seconds"],
            "emulator_cpu": result["emulator_cpu"],
        },
        "instrumented_seconds": result["seconds"],
    }


def run_rss(bench: Bench, plan: Plan) -> dict[str, Any]:
    bench.emulator.call(op="seconds_per_char", value=SECONDS_PER_CHAR)
    bench.emulator.call(op="stream_latency", seconds=0)
    bench.streams()
    print(f"2. one text of {', '.join(f'{size:,}' for size in plan.rss_sizes)} characters", flush=True)
    shapes = {}
    for size in plan.rss_sizes:
        texts = {"text": make_text(size)}
        (bench.work / f"text-{size}.json").write_text(json.dumps(texts))
        shapes[size] = (texts, *expected_shape(texts))
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in plan.rss_sizes}
    for rep in range(plan.rss_reps):
        for size in _rotated(plan.rss_sizes, rep):
            texts, segments, durations, _ = shapes[size]
            folder = bench.work / f"rss-{size}-{rep}"
            folder.mkdir()
            os.sync()
            label = f"rss-{size}-{rep}"
            spec = {
                "kind": "operator",
                "texts_file": str(bench.work / f"text-{size}.json"),
                "destination": str(folder),
            }
            try:
                result = bench.client(spec, label)
                _check_output(bench, label, result, folder, segments, durations)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            runs[size].append(result)
            print(
                f"  rep {rep} {size:>9,} chars {segments:>4} segments {result['seconds']:7.2f} s "
                f"peak RSS growth {result['peak_rss_growth'] / MiB:6.1f} MiB",
                flush=True,
            )
    rows = []
    for size, results in runs.items():
        _, segments, durations, streamed = shapes[size]
        rows.append(
            {
                "characters": size,
                "segments": segments,
                "audio_seconds": sum(durations.values()),
                "streamed_bytes": streamed,
                "output_bytes": results[0]["bytes"],
                "peak_rss_growth": _spread([r["peak_rss_growth"] for r in results]),
                "rss_before": statistics.median(r["rss_before"] for r in results),
                "seconds": _spread([r["seconds"] for r in results]),
                "warm_up_rss": statistics.median(r["warm_up_rss"] for r in results),
            }
        )
    small, large = rows[0]["peak_rss_growth"], rows[-1]["peak_rss_growth"]
    return {
        "seconds_per_char": SECONDS_PER_CHAR,
        "rows": rows,
        "growth_median": large["median"] - small["median"],
        "growth_worst": large["max"] - small["min"],
    }


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if "book" in result:
        ratio = result["book"]["ratio"]
        out.append(
            Target(
                f"Book of {result['book']['chapters']} chapters: operator wall time / ideal",
                f"{ratio['median']:.2f}x (min {ratio['min']:.2f}x, max {ratio['max']:.2f}x)",
                f"<= {TIME_RATIO_LIMIT:.1f}x",
                ratio["median"] <= TIME_RATIO_LIMIT,
            )
        )
    if "rss" in result:
        rows = result["rss"]["rows"]
        growth = result["rss"]["growth_median"]
        out.append(
            Target(
                f"Peak RSS growth, {rows[-1]['characters']:,} minus {rows[0]['characters']:,} characters"
                " (medians)",
                f"{growth / MiB:.1f} MiB (worst pair {result['rss']['growth_worst'] / MiB:.1f} MiB)",
                f"< {RSS_GROWTH_LIMIT / MiB:.0f} MiB",
                growth < RSS_GROWTH_LIMIT,
            )
        )
    return [asdict(t) for t in out]


def measure(
    *, quick: bool, reps: int | None, parts: list[str], work: Path, profile: bool, command: str
) -> dict[str, Any]:
    """Run the chosen parts against a fresh emulator; return the result (not yet saved)."""
    plan = QUICK if quick else FULL
    if reps is not None:
        plan = Plan(plan.chapters, reps, plan.rss_sizes, reps)
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    started = datetime.now(timezone.utc)
    load_before = [round(x, 2) for x in os.getloadavg()]
    clock = time.monotonic()
    result: dict[str, Any] = {}
    with ServerProcess("_serve_emulator.py", logs) as emulator:
        bench = Bench(emulator, work, logs, profile)
        if "book" in parts:
            result["book"] = run_book(bench, plan)
        if "rss" in parts:
            result["rss"] = run_rss(bench, plan)
    result["meta"] = {
        "started_utc": started.isoformat(timespec="seconds"),
        "duration_seconds": round(time.monotonic() - clock, 1),
        "command": command,
        "quick": quick,
        "book_reps": plan.book_reps,
        "rss_reps": plan.rss_reps,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
        "versions": package_versions(
            ["airflow-provider-camb", "apache-airflow", "requests", "urllib3", "soundfile", "numpy"]
        ),
    }
    result["targets"] = targets(result)
    return result


def save(result: dict[str, Any]) -> Path:
    """Into ``tts_book.json`` if complete; a quick or partial run goes to a ``.raw.json`` beside it."""
    RESULTS_DIR.mkdir(exist_ok=True)
    if result["meta"]["quick"]:
        name = "tts_book_quick.raw.json"
    elif "book" in result and "rss" in result:
        name = "tts_book.json"
    else:
        name = "tts_book_partial.raw.json"
    out = RESULTS_DIR / name
    out.write_text(json.dumps(result, indent=1) + "\n")
    return out


def print_targets(result: dict[str, Any]) -> None:
    for target in result["targets"]:
        verdict = "PASS" if target["passed"] else "FAIL"
        print(f"  {verdict}  {target['name']}: {target['value']} ({target['limit']})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 chapters, 10k and 100k characters, once")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default: book 5, memory 3)")
    parser.add_argument("--part", action="append", choices=["book", "rss"], help="run only this part")
    parser.add_argument("--docs", action="store_true", help="also rewrite the docs section in --quick mode")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/ (results JSON only)")
    parser.add_argument("--profile", action="store_true", help="cProfile the operator runs (main thread)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the scratch dir (logs, profiles)")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the docs section from results/tts_book.json, no run",
    )
    return parser.parse_args(argv)


def _write_docs(result: dict[str, Any]) -> None:
    DOCS_PAGE.write_text(_tts_book_page.splice(DOCS_PAGE.read_text(), _tts_book_page.section(result)))
    print(f"wrote the text-to-speech section of {DOCS_PAGE.relative_to(REPO_DIR)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        # e.g. after editing bench/tts_book_notes.md: no need to measure again.
        _write_docs(json.loads((RESULTS_DIR / "tts_book.json").read_text()))
        return 0
    words = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python bench/tts_book.py", *words])
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the emulator and scratch files go.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="tts-", dir=SCRATCH_ROOT))
    try:
        result = measure(
            quick=args.quick,
            reps=args.reps,
            parts=args.part or ["book", "rss"],
            work=scratch,
            profile=args.profile,
            command=command,
        )
    finally:
        if args.keep_scratch or args.profile:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    out = save(result)
    print(f"wrote {out.relative_to(REPO_DIR)}")
    if not args.no_docs and (args.docs or not args.quick) and "book" in result and "rss" in result:
        _write_docs(result)
    print_targets(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
