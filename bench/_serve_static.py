"""A plain static-file HTTP server in its own process, sending bodies with ``sendfile(2)``.

The emulator generates its audio in Python, which on 2 shared cores can be slower than the
client it feeds; this server hands the kernel the file instead, so a single large download is
limited by the client (what ``single_large_file`` measures), not by the server. It answers
``GET`` (with one ``Range: bytes=a-b`` range, as the operator's probe sends) and ``HEAD``, over
HTTP/1.1 keep-alive.

Protocol, as the other bench servers: JSON lines on stdin and stdout; the first line out is
``{"ready": true, "server_url": ...}``. ``{"op": "add_file", "path": ..., "size": n}`` writes
``n`` random bytes to ``path`` and answers its ``url`` and ``sha256``. Closing stdin (or
SIGTERM) stops the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MiB = 2**20
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
# Files served, by URL path: only what add_file made is reachable, nothing else on disk.
_FILES: dict[str, Path] = {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request on stderr would cost more than the small requests themselves.
        pass

    def _head(self) -> tuple[Path, int, int] | None:
        path = _FILES.get(self.path.split("?", 1)[0])
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        size = path.stat().st_size
        start, end = 0, size - 1
        match = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "audio/flac")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return path, start, end - start + 1

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        found = self._head()
        if found is None:
            return
        path, offset, count = found
        self.wfile.flush()
        with path.open("rb") as file:
            # The kernel copies page cache to the socket: no Python loop over the body.
            self.connection.sendfile(file, offset, count)


def _add_file(path: Path, size: int) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            digest.update(block)
            file.write(block)
            left -= len(block)
    url_path = f"/files/{path.name}"
    _FILES[url_path] = path
    return {"url_path": url_path, "sha256": digest.hexdigest()}


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="static-http", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        print(json.dumps({"ready": True, "server_url": base}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if request.get("op") != "add_file":
                    raise ValueError(f"unknown op {request.get('op')!r}")
                made = _add_file(Path(request["path"]), int(request["size"]))
                reply = {"ok": True, "url": base + made["url_path"], "sha256": made["sha256"]}
            except Exception as err:  # reported to the parent, which raises
                reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            print(json.dumps(reply), flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
