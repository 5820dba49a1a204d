"""One measured text-to-speech run, in a fresh interpreter: ``python bench/_tts_client.py '<spec>'``.

Kinds:

* ``operator``: ``CambTextToSpeechOperator.execute()`` on the texts of ``texts_file`` (a JSON
  ``{name: text}``) into ``destination``. With ``instrument`` set, the operator's own methods are
  wrapped (in this process only; the operator's code is unchanged) to time each segment, each
  stream call, the planning and each text's join and write.
* ``sequential``: the same segments (``split_text`` of the same texts), one plain
  ``requests.Session().post(..., stream=True)`` at a time, each body read to the end and
  dropped: how long each stream call takes when nothing else runs.

Prints one JSON line: ``_client.measure``'s ``seconds`` and ``peak_rss_growth`` (VmHWM reset
right before the run, minus VmRSS then), plus what the kind reports. Imports, the connection
lookup and the destination's filesystem are set up before the measurement, as in a running
worker; what that costs is reported as ``warm_up_seconds`` and ``warm_up_rss``.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import _client

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 256 * 1024  # what the hook's TTSStream reads per call
VOICE_ID = 20298


def _load_texts(spec: dict[str, Any]) -> dict[str, str]:
    texts: dict[str, str] = json.loads(Path(spec["texts_file"]).read_text())
    return texts


def _warm_up(destination: str) -> dict[str, Any]:
    """What a worker that already ran this operator has: imports, connection, filesystem."""
    rss = _client._rss()
    start = time.perf_counter()
    import numpy  # noqa: F401  - imported by the first join
    import soundfile  # noqa: F401

    from airflow_provider_camb.hooks.camb import CambHook
    from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator  # noqa: F401
    from airflow_provider_camb.storage.destination import resolve_destination

    _ = CambHook().settings  # the connection lookup (from AIRFLOW_CONN_CAMB_DEFAULT)
    folder = resolve_destination(destination, None)
    folder.fs.ls("/")
    return {"warm_up_seconds": time.perf_counter() - start, "warm_up_rss": _client._rss() - rss}


class _Recorder:
    """Timings from wrapped operator methods; ``perf_counter`` seconds, appended under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, list[tuple[float, float]]] = {}

    def add(self, name: str, start: float, end: float) -> None:
        with self.lock:
            self.events.setdefault(name, []).append((start, end))

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute, None)
        if original is None:  # renamed in the operator: that part of the breakdown stays empty
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(name, start, time.perf_counter())

        setattr(owner, attribute, timed)


def _instrument() -> _Recorder:
    from airflow_provider_camb.hooks.camb import CambHook
    from airflow_provider_camb.operators import text_to_speech as module

    recorder = _Recorder()
    operator = module.CambTextToSpeechOperator
    recorder.wrap(operator, "_checked_inputs", "inputs")
    recorder.wrap(operator, "_plan", "plan")
    recorder.wrap(operator, "_make_segment", "segment")  # worker threads: staging check + stream
    recorder.wrap(operator, "_finish", "finish")  # main thread: wait, join, write, clean up
    recorder.wrap(CambHook, "synthesize_to_file", "stream")  # POST to the last byte on disk
    recorder.wrap(module, "join_segments", "join")
    recorder.wrap(module, "write_file_atomically", "write")
    return recorder


def _busy_union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _breakdown(recorder: _Recorder, start: float, end: float, concurrency: int) -> dict[str, Any]:
    """Where the wall time went, from the recorded intervals."""
    events = recorder.events
    streams = events.get("stream", [])
    segments = events.get("segment", [])
    finishes = events.get("finish", [])
    joins = events.get("join", [])
    writes = events.get("write", [])
    durations = [e - s for s, e in streams]
    first_stream = min(s for s, _ in streams)
    last_stream = max(e for _, e in streams)
    # How long each text's _finish waited for its segments: its time minus its join and write.
    main_work = sum(e - s for s, e in joins) + sum(e - s for s, e in writes)
    return {
        "wall": end - start,
        "inputs": sum(e - s for s, e in events.get("inputs", [])),
        "plan": sum(e - s for s, e in events.get("plan", [])),
        "before_first_stream": first_stream - start,
        "streams_span": last_stream - first_stream,
        "after_last_stream": end - last_stream,
        "stream_count": len(streams),
        "stream_sum": sum(durations),
        "stream_min": min(durations),
        "stream_median": statistics.median(durations),
        "stream_max": max(durations),
        # sum / span: how many streams were in flight on average while any was.
        "streams_in_flight": sum(durations) / (last_stream - first_stream),
        "pool_busy_union": _busy_union(segments),
        "segment_overhead_sum": sum(e - s for s, e in segments) - sum(durations),
        "join_sum": sum(e - s for s, e in joins),
        "join_max": max((e - s for s, e in joins), default=0.0),
        "write_sum": sum(e - s for s, e in writes),
        "finish_sum": sum(e - s for s, e in finishes),
        "finish_waiting_sum": sum(e - s for s, e in finishes) - main_work,
        "concurrency": concurrency,
    }


def prepare_operator(spec: dict[str, Any]) -> tuple[Callable[[], int], dict[str, Any]]:
    warm = _warm_up(spec["destination"])
    from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator

    texts = _load_texts(spec)
    extra: dict[str, Any] = {}
    if "max_concurrency" in spec:
        extra["max_concurrency"] = int(spec["max_concurrency"])
    op = CambTextToSpeechOperator(
        task_id="bench", texts=texts, voice_id=VOICE_ID, destination=spec["destination"], **extra
    )
    recorder = _instrument() if spec.get("instrument") else None
    report: dict[str, Any] = {**warm, "max_concurrency": op.max_concurrency}
    ti = _client._TaskInstanceStub()

    def action() -> int:
        report["wall_clock_start"] = time.time()
        start = time.perf_counter()
        result = op.execute(context=cast("Any", {"ti": ti}))
        end = time.perf_counter()
        report["wall_clock_end"] = time.time()
        if set(result) != set(texts):
            raise RuntimeError(f"operator delivered {len(result)} of {len(texts)} files")
        report["files"] = {
            name: {"duration": item["duration_seconds"], "segments": item["segments"], "bytes": item["bytes"]}
            for name, item in result.items()
        }
        if recorder is not None:
            report["breakdown"] = _breakdown(recorder, start, end, op.max_concurrency)
        return int(sum(item["bytes"] for item in result.values()))

    return action, report


def prepare_sequential(spec: dict[str, Any]) -> tuple[Callable[[], int], dict[str, Any]]:
    import requests

    from airflow_provider_camb.speech.request import TTSStreamRequest
    from airflow_provider_camb.speech.segments import split_text

    request = TTSStreamRequest.create(voice_id=VOICE_ID, output_format="flac")
    # The operator's payloads: the same segments, the same format (flac segments for flac output).
    payloads = [
        request.payload(piece, "flac") for text in _load_texts(spec).values() for piece in split_text(text)
    ]
    url = f"{spec['base_url']}/tts-stream"
    headers = {"x-api-key": spec["api_key"], "Accept": "audio/*, application/json"}
    report: dict[str, Any] = {}

    def action() -> int:
        total = 0
        times = []
        report["wall_clock_start"] = time.time()
        with requests.Session() as session:
            for payload in payloads:
                start = time.perf_counter()
                with session.post(url, json=payload, headers=headers, stream=True, timeout=60) as response:
                    response.raise_for_status()
                    for chunk in response.iter_content(CHUNK):
                        total += len(chunk)
                times.append(time.perf_counter() - start)
        report["wall_clock_end"] = time.time()
        report["stream_times"] = times
        return total

    return action, report


PREPARE: dict[str, Callable[[dict[str, Any]], tuple[Callable[[], int], dict[str, Any]]]] = {
    "operator": prepare_operator,
    "sequential": prepare_sequential,
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    action, report = PREPARE[spec["kind"]](spec)

    def counted() -> int:
        start = _cpu_seconds()
        try:
            return action()
        finally:
            report["cpu_seconds"] = _cpu_seconds() - start

    result = _client.measure(counted, spec.get("profile"))
    print(json.dumps({**result, **report}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
