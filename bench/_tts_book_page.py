"""The text-to-speech section of ``docs/performance.md``, from one ``bench/tts_book.py`` result.

``bench/tts_book.py`` splices the section into the page between its two marker comments;
``_docs_page.py`` (``make bench``, which rewrites the whole page) appends it from the saved
result. Hand-written findings live in ``bench/tts_book_notes.md`` and are spliced in verbatim.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

MiB = 2**20
BENCH_DIR = Path(__file__).resolve().parent
RESULTS = {
    False: BENCH_DIR / "results" / "tts_book.json",
    True: BENCH_DIR / "results" / "tts_book_quick.raw.json",
}
NOTES = BENCH_DIR / "tts_book_notes.md"
START = "<!-- tts-book: start; written by bench/tts_book.py from bench/results/tts_book.json -->"
END = "<!-- tts-book: end -->"


def _s(value: float) -> str:
    return f"{value:.2f}"


def _spread(values: dict[str, float], fmt: Any = _s, scale: float = 1.0) -> list[str]:
    return [fmt(values["min"] * scale), fmt(values["median"] * scale), fmt(values["max"] * scale)]


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _mib(value: float) -> str:
    return f"{value / MiB:.1f}"


def _header(meta: dict[str, Any]) -> list[str]:
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    return [
        "## Text to speech: a whole book with `CambTextToSpeechOperator`",
        "",
        "How long `CambTextToSpeechOperator` takes to synthesise a book, compared with the time its",
        "stream calls need when made one at a time, and how its memory grows with the length of a",
        "text. The emulator stands in for Camb.ai; each run is a fresh process.",
        "",
        "```console",
        "$ .venv/bin/python bench/tts_book.py           # this section alone (about 2 minutes)",
        "$ .venv/bin/python bench/tts_book.py --quick   # 20 chapters, smaller texts, once; no docs",
        "$ .venv/bin/python bench/run_all.py --scenario tts_book --reps 9   # the same, more repetitions",
        "$ make bench                                    # every benchmark, the whole page",
        "```",
        "",
        f"- Date (UTC): {meta['started_utc']}; duration {meta['duration_seconds'] / 60:.1f} min;"
        f" command `{meta['command']}`; {meta['book_reps']} interleaved repetitions of the book,"
        f" {meta['rss_reps']} of each text length.",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB RAM,"
        f" Linux {machine['kernel']}, Python {machine['python']}.",
        f"- Load average (1, 5, 15 min) before: {meta['load_average_before']},"
        f" after: {meta['load_average_after']} (other work was running on the machine).",
        f"- Versions: {versions}.",
        "",
    ]


def _targets(result: dict[str, Any]) -> list[str]:
    lines = ["### Targets", "", "| Target | Measured | Limit | Result |", "|---|---|---|---|"]
    for t in result["targets"]:
        lines.append(
            f"| {t['name']} | {t['value']} | {t['limit']} | {'pass' if t['passed'] else '**FAIL**'} |"
        )
    return [*lines, ""]


def _book(book: dict[str, Any]) -> list[str]:
    chapter = book["chapter_chars"]
    concurrency = book["reps"][0]["max_concurrency"]
    lines = [
        "### Wall time against the ideal",
        "",
        f"The book: {book['chapters']} chapters of generated English prose (seeded), "
        f"{chapter['min']:,.0f} to {chapter['max']:,.0f} characters each, {book['characters']:,} in all,"
        f" which the operator splits into {book['segments']} segments: {book['segments']} calls of"
        f" `POST /tts-stream`. The emulator waits {book['latency_seconds'] * 1000:.0f} ms before each"
        f" answer and streams {book['seconds_per_char']} s of FLAC audio per character"
        f" ({book['audio_seconds'] / 60:.0f} min of audio, {book['streamed_bytes'] / MiB:.0f} MiB as"
        f" streamed; {book['output_bytes'] / MiB:.0f} MiB once joined into {book['chapters']} files)."
        f' The operator runs with its defaults: `max_concurrency={concurrency}`, `output_format="flac"`.',
        "",
        "| | Min | Median | Max |",
        "|---|---|---|---|",
        "| Operator wall time / ideal (each repetition against its own ideal) | "
        + " | ".join(_spread(book["ratio"], _x))
        + " |",
        "| Operator wall time (s) | " + " | ".join(_spread(book["operator_seconds"])) + " |",
        f"| Ideal: the sum of the stream times / {concurrency} (s) | "
        + " | ".join(_spread(book["ideal_seconds"]))
        + " |",
        "| One stream call, one at a time: median of the repetition (ms) | "
        + " | ".join(_spread(book["stream_median"], _ms, 1000))
        + " |",
        "",
        "| Repetition | Sum of the stream times, one at a time (s) | Ideal (s) | Operator (s) "
        "| Operator / ideal | CPU: operator + emulator (s) | Operator peak RSS growth "
        "| Warm-up, not counted (s) | Load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in book["reps"]:
        cols = [
            str(row["rep"] + 1),
            _s(row["stream_sum"]),
            _s(row["ideal_seconds"]),
            _s(row["operator_seconds"]),
            _x(row["ratio"]),
            f"{row['operator_cpu']:.2f} + {row['operator_emulator_cpu']:.2f}",
            f"{_mib(row['operator_peak_rss_growth'])} MiB",
            _s(row["warm_up_seconds"]),
            str(row["load_1min"]),
        ]
        lines.append("| " + " | ".join(cols) + " |")
    return [*lines, "", *_breakdown(book), ""]


def _breakdown(book: dict[str, Any]) -> list[str]:
    b = book["instrumented"]
    sequential = book["stream_median"]["median"]
    slower = b["stream_median"] / sequential - 1
    cpu = statistics.median(row["sequential_cpu"] for row in book["reps"])
    seconds = statistics.median(row["sequential_seconds"] for row in book["reps"])
    return [
        "**Where the time goes.** One more run of the operator, its methods timed from the benchmark"
        " process (the operator's code is unchanged; this run is not in the figures above), took"
        f" {b['wall']:.2f} s:",
        "",
        f"- {b['before_first_stream']:.3f} s before the first stream call: checking the inputs, splitting"
        f" {book['chapters']} chapters into segments, naming their staging files and checking which"
        f" outputs exist already ({b['plan']:.3f} s of it in planning).",
        f"- {b['streams_span']:.2f} s from the first stream call to the end of the last:"
        f" {b['stream_count']} calls, {b['streams_in_flight']:.2f} in flight on average"
        f" (`max_concurrency={b['concurrency']}`). A call took {b['stream_median'] * 1000:.1f} ms"
        f" (median; {b['stream_min'] * 1000:.1f} - {b['stream_max'] * 1000:.1f}) against"
        f" {sequential * 1000:.1f} ms one at a time ({slower:+.0%}): the two cores are shared by the"
        " emulator, the four streams and the joins. Between two calls a worker spent"
        f" {b['segment_overhead_sum'] / b['stream_count'] * 1000:.2f} ms on average (staging check,"
        " rename).",
        f"- Meanwhile the main thread joined the chapters as their segments arrived:"
        f" {b['join_sum']:.2f} s inside the joins in all (libsndfile decoding the segments and encoding"
        f" the chapter; at most {b['join_max'] * 1000:.0f} ms a chapter) and {b['write_sum']:.2f} s"
        " writing the files, all overlapped with the streams.",
        f"- {b['after_last_stream']:.3f} s after the last stream call: the last chapter's join and write.",
        f"- CPU: {b['client_cpu']:.2f} s in the operator's process and {b['emulator_cpu']:.2f} s in the"
        f" emulator's, {(b['client_cpu'] + b['emulator_cpu']) / b['wall']:.1f} cores' worth over the"
        f" wall time, on a machine of two shared cores. The sequential client used {cpu:.2f} s over"
        f" {seconds:.1f} s (median of the repetitions): it mostly waits.",
    ]


def _rss(rss: dict[str, Any]) -> list[str]:
    lines = [
        "### Peak memory against text length",
        "",
        f"One text of each length (the same generated prose), FLAC, {rss['seconds_per_char']} s of"
        " audio per character (the emulator's default, 0.06, a realistic speaking rate, would make the"
        " longest text 16 hours of audio), no added latency, default `max_concurrency`.",
        "",
        "| Characters | Segments | Audio | Streamed FLAC | Output FLAC | Median time (s) "
        "| Peak RSS growth, median (min - max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rss["rows"]:
        growth = row["peak_rss_growth"]
        cols = [
            f"{row['characters']:,}",
            str(row["segments"]),
            f"{row['audio_seconds'] / 60:.1f} min",
            f"{_mib(row['streamed_bytes'])} MiB",
            f"{_mib(row['output_bytes'])} MiB",
            _s(row["seconds"]["median"]),
            f"{_mib(growth['median'])} MiB ({_mib(growth['min'])} - {_mib(growth['max'])})",
        ]
        lines.append("| " + " | ".join(cols) + " |")
    first, last = rss["rows"][0], rss["rows"][-1]
    lines += [
        "",
        f"From {first['characters']:,} to {last['characters']:,} characters the median peak grows by"
        f" {_mib(rss['growth_median'])} MiB (largest against smallest single run:"
        f" {_mib(rss['growth_worst'])} MiB), while the audio streamed grows by"
        f" {_mib(last['streamed_bytes'] - first['streamed_bytes'])} MiB: no audio is held in memory."
        f" Before `execute()` the process held {_mib(first['rss_before'])} MiB (Airflow, the provider,"
        f" numpy and libsndfile imported, the connection looked up; {_mib(first['warm_up_rss'])} MiB of"
        " that is the warm-up).",
        "",
    ]
    return lines


METHOD = """### How it is measured

- **Ideal.** The stream time of a segment is how long one `POST /tts-stream` takes from sending
  the request to reading the last byte of the answer, when nothing else runs: the latency, the
  emulator generating and sending the audio, the client reading it. A fresh process measures it
  for every segment of the book, one call after the other on one keep-alive `requests.Session`
  (the same segments, `split_text` of the same chapters, and the same request bodies as the
  operator's; the body is read in 256 KiB pieces, as the operator's hook does, and dropped). The
  ideal is the sum of those times divided by `max_concurrency`: a client that kept exactly that
  many streams busy all the time, with no other cost. It is a lower bound: it leaves out
  everything else the operator must do (splitting the text, writing each segment to disk,
  joining them into one file per chapter through libsndfile, writing the files), of which at
  least the last chapter's join cannot overlap any stream.
- **Pairs.** In every repetition the sequential client and the operator run back to back, in an
  order that alternates from one repetition to the next, each in a fresh process against the same
  emulator; the ratio of a repetition is its operator time over its own ideal. Reported: the
  minimum, median and maximum of those ratios. The target is on the median.
- **Operator.** `CambTextToSpeechOperator(task_id=..., texts={chapter: text}, voice_id=...,
  destination=<empty local folder>)` with every other argument at its default, run through
  `execute()` with a stub task instance. Before the timing the process imports what the operator
  needs (numpy and soundfile included), looks up the connection and makes the local filesystem,
  as a worker that has run the operator before has (about a second, mostly imports, and not
  counted). The timing is `time.perf_counter` around `execute()`.
- **Memory.** Peak RSS growth: the peak RSS is reset through `/proc/self/clear_refs` right before
  `execute()`, and growth = `VmHWM` after it minus `VmRSS` before it.
- **Checks.** For every run the emulator's journal must show exactly one stream call per segment,
  all answered 200; the sequential client must have read exactly the bytes the emulator serves for
  those segments; the operator must have written one file per text, of the size it reports, and
  each file's duration must be the sum of its segments' durations.
- **Servers.** The emulator runs in a process of its own (`bench/_serve_emulator.py`), so its CPU and
  memory are not the client's; the two share the machine's two cores, as a small worker would.
- **Noise.** The machine is a shared 2-core VM. A repetition that coincides with other work shows
  as a higher operator time (and a higher load figure); the median of the pairs removes most of
  that, and a figure within about 10 % of the limit deserves a re-run (`--reps 9`).
"""


def section(result: dict[str, Any]) -> str:
    lines = [START, "", *_header(result["meta"]), *_targets(result)]
    lines += _book(result["book"])
    lines += _rss(result["rss"])
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    lines += [METHOD.rstrip(), "", END]
    return "\n".join(lines) + "\n"


def saved_section(quick: bool = False) -> str:
    """The section from the saved result (the quick one if asked and present); empty if none."""
    path = RESULTS[quick] if RESULTS[quick].exists() else RESULTS[False]
    if not path.exists():
        return ""
    result = json.loads(path.read_text())
    if "book" not in result or "rss" not in result:
        return ""
    return section(result)


def splice(page: str, new_section: str) -> str:
    """``page`` with its text-to-speech section replaced by ``new_section`` (appended if absent)."""
    start, end = page.find(START), page.find(END)
    if start != -1 and end > start:
        rest = page[end + len(END) :].lstrip("\n")
        return page[:start] + new_section + ("\n" + rest if rest else "")
    return page.rstrip("\n") + "\n\n" + new_section
