"""The Camb.ai emulator for ``bench/tts_book.py``, in its own process, driven by JSON lines.

The same protocol as ``_serve_emulator.py`` (one JSON object per line in, one out; the first
line out is ``{"ready": ...}``; closing stdin stops it), with the ``POST /tts-stream`` knobs on
top: a latency before every stream answer, the seconds of audio per character, and the journal
of stream calls. The emulator generates the audio as it sends it, so its CPU stays out of the
measured client's process.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from typing import Any

from airflow_provider_camb.testing import CambEmulator

API_KEY = "bench-key"


def handle(emu: CambEmulator, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "stream_latency":
        emu.clear_faults()
        if float(request["seconds"]) > 0:
            emu.add_latency("tts_stream", float(request["seconds"]))
        return {}
    if op == "seconds_per_char":
        emu.stream_seconds_per_char = float(request["value"])
        return {}
    if op == "streams":
        # What the server saw since the last call: proves the client made every call (and no
        # extra one), and when each arrived (wall clock, comparable with the client's).
        entries = emu.requests("tts_stream")
        emu.clear_journal()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            # CPU seconds this process has used so far (all its threads): the parent takes the
            # difference around a run.
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "count": len(entries),
            "statuses": sorted({entry.status for entry in entries}),
            "times": [entry.time for entry in entries],
        }
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    # SIGTERM from the parent must still run emu.stop() (the with block) on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with CambEmulator(api_key=API_KEY, port=0) as emu:
        ready = {
            "ready": True,
            "server_url": emu.server_url,
            "base_url": emu.base_url,
            "api_key": API_KEY,
            "conn": emu.connection_uri_json(),
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = {"ok": True, **handle(emu, json.loads(line))}
            except Exception as err:  # reported to the parent, which raises
                reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
