"""A small forwarding HTTP proxy on 127.0.0.1 that records what passed through it.

Enough for ``HTTP_PROXY=http://127.0.0.1:<port>``: clients send absolute-form requests
(``GET http://host:port/path HTTP/1.1``), the proxy forwards them to loopback hosts only and
streams the answer back.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator

# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    url: str
    had_authorization: bool
    had_api_key: bool


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        target = urlsplit(self.path)
        self.server.seen.append(
            ProxiedRequest(
                self.command,
                self.path,
                "authorization" in {k.lower() for k in self.headers},
                "x-api-key" in {k.lower() for k in self.headers},
            )
        )
        if target.hostname not in ("127.0.0.1", "localhost") and not str(target.hostname).startswith("127."):
            self.send_error(403, "this test proxy only forwards to loopback hosts")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path or "/", body=body, headers=headers)
            answer = upstream.getresponse()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "transfer-encoding":
                    self.send_header(name, value)
            chunked = answer.getheader("Content-Length") is None and self.command != "HEAD"
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return
            while chunk := answer.read(1 << 16):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            self.close_connection = True
        finally:
            upstream.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _forward


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[ProxiedRequest] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


@contextlib.contextmanager
def forwarding_proxy() -> Iterator[_ProxyServer]:
    """A running proxy (``.server_address``, ``.seen``), stopped on exit, also on failure."""
    server = _ProxyServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
