"""The Camb.ai emulator in its own process, driven by JSON lines on stdin.

The emulator's serving threads burn CPU and memory while they generate audio; in a separate
process they cannot pollute the measured client's RSS or share its GIL. Protocol: one JSON
object per line in, one JSON object per line out; the first line out is ``{"ready": ...}``.
Closing stdin (or SIGTERM) stops the server. Serves the transfer benchmarks (runs to download)
and the text-to-speech one (``POST /tts-stream`` latency, seconds of audio per character, and
the journal of stream calls with this process's CPU time).
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from typing import Any

from airflow_provider_camb.testing import CambEmulator

API_KEY = "bench-key"
# Long enough that no URL expires during a full benchmark run (refreshes would add API calls).
URL_TTL_SECONDS = 6 * 3600.0


def handle(emu: CambEmulator, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "add_runs":
        run_ids = emu.add_tts_runs(int(request["n"]), size_bytes=int(request["size"]), audio_format="flac")
        return {"urls": {str(run_id): emu.download_url(run_id) for run_id in run_ids}}
    if op == "latency":
        emu.add_latency("download", float(request["seconds"]))
        return {}
    if op == "clear_faults":
        emu.clear_faults()
        return {}
    if op == "sha256":
        return {"sha256": emu.audio_sha256(int(request["run_id"]))}
    if op == "downloads":
        # How many GETs the storage host saw: proves a client did not skip files.
        count = sum(1 for entry in emu.requests("download") if entry.method == "GET")
        emu.clear_journal()
        return {"downloads": count}
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
        emu.url_ttl = URL_TTL_SECONDS
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
