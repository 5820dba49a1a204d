"""The emulator's HTTP layer: server, request handler, the response type and how it is written.

Nothing here knows the Camb.ai API.  The server hands every request to one ``respond`` callable
(method, target, lower-cased headers, body) and writes the :class:`Response` it returns,
streaming audio bodies (with a ``Content-Length``, or chunked when the length is not announced)
and carrying out body cuts (reset or short bodies) on the socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import socketserver
import struct
import sys
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    #: What the server calls for each request: method, target, lower-cased headers, body.
    Respond = Callable[[str, str, dict[str, str], bytes], "Response"]

# The emulator's logger name predates this module; keep it so logging setups still apply.
log = logging.getLogger("airflow_provider_camb.testing.emulator")

# Slices of an in-memory body sent as one chunk of a chunked answer, so a streaming client sees
# the body arrive in several pieces as it would from a real streaming endpoint.
_BODY_PIECE = 64 * 1024


class ServedFile(Protocol):
    """A file the download path can serve: generated audio, or a small generated blob."""

    @property
    def size(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...


@dataclass
class Response:
    """One answer, written by :class:`RequestHandler`."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Audio responses stream [start, end) of a file instead of ``body``.
    audio: ServedFile | None = None
    start: int = 0
    end: int = 0
    # Send the body with Transfer-Encoding: chunked instead of a Content-Length, as an endpoint
    # that streams audio it is still producing does.
    chunked: bool = False
    # Body faults: stop after this many body bytes, then "reset" or "close".
    cut_after: int | None = None
    cut_mode: str = ""

    @property
    def body_length(self) -> int:
        """Bytes of body this answer carries (before any cut)."""
        return self.end - self.start if self.audio is not None else len(self.body)

    @property
    def streamed(self) -> bool:
        """Whether the body is written piece by piece (audio, or chunked), so it can be cut."""
        return self.audio is not None or self.chunked


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON answer.

    :param status: the status code.
    :param payload: anything ``json.dumps`` takes.
    :param headers: extra headers.
    """
    return Response(status, json.dumps(payload).encode(), headers=headers or [])


def detail(status: int, message: str) -> Response:
    """A FastAPI-style ``{"detail": message}`` answer.

    :param status: the status code.
    :param message: the detail text.
    """
    return json_response(status, {"detail": message})


def s3_error(status: int, code: str, message: str) -> Response:
    """An object-store error: the download host imitates one, which answers in XML.

    :param status: the status code.
    :param code: the S3 error code, e.g. ``AccessDenied``.
    :param message: the human-readable message.
    """
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(status, body.encode(), content_type="application/xml")


def phrase(status: int) -> str:
    """The reason phrase of ``status``, or ``"Error"`` for codes HTTP does not name.

    :param status: the status code.
    """
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def audio_response(audio: ServedFile, range_header: str | None) -> Response:
    """Serve ``audio`` whole (200), one range of it (206), or 416, honouring ``Range``.

    :param audio: the file.
    :param range_header: the request's ``Range`` header, if any.
    """
    headers = [("Accept-Ranges", "bytes")]
    size = audio.size
    byte_range = parse_range(range_header, size) if range_header else None
    if byte_range == "unsatisfiable":
        response = s3_error(416, "InvalidRange", "The requested range is not satisfiable")
        response.headers = [("Content-Range", f"bytes */{size}")]
        return response
    if isinstance(byte_range, tuple):
        start, last = byte_range
        headers.append(("Content-Range", f"bytes {start}-{last}/{size}"))
        return Response(
            206, content_type=audio.content_type, headers=headers, audio=audio, start=start, end=last + 1
        )
    return Response(200, content_type=audio.content_type, headers=headers, audio=audio, start=0, end=size)


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` inclusive, ``"unsatisfiable"``, or ``None`` to ignore the header.

    Multi-range and malformed headers are ignored (a full 200 answer), as RFC 9110 allows.

    :param header: the ``Range`` header.
    :param size: the size of the file it applies to.
    """
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first_s, last_s = match.groups()
    if first_s == "":
        suffix = int(last_s)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(int(last_s), size - 1) if last_s else size - 1


class Server(ThreadingHTTPServer):
    """A threading HTTP server that passes each request to ``respond`` and can drop idle clients.

    :param address: ``(host, port)`` to bind; port 0 picks a free one.
    :param respond: called for every request; its :class:`Response` is written back.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], respond: Respond) -> None:
        self.respond = respond
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall for
        # seconds on machines without a resolver; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-response (a cancelled download, a test that stopped reading,
        # stop() shutting idle sockets) is routine here; only real bugs deserve a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("camb-emulator: client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def serve_in_background(self, name: str) -> None:
        """Serve in a daemon thread until :meth:`stop`.

        :param name: the thread's name.
        """
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close every client connection and the listening socket."""
        thread = self._thread
        # shutdown() waits for serve_forever() to notice; without a serving thread it would hang.
        if thread is not None:
            self.shutdown()
        self.close_open_connections()
        self.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def close_open_connections(self) -> None:
        """Shut down every client connection still open."""
        # Idle keep-alive connections sit in a blocking read; without this they would keep
        # answering after stop() and a test could talk to a "stopped" emulator.
        with self.connections_lock:
            conns = list(self.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: reads the body (plain or chunked), writes a :class:`Response`."""

    protocol_version = "HTTP/1.1"
    server_version = "CambEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # Tests start many emulators; the stdlib's stderr access log would drown their output.
        log.debug("camb-emulator: %s", format % args)

    def _serve(self) -> None:
        # ``self.command`` is the request method, the same name that picked ``do_<METHOD>``.
        method = self.command
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        response = self.server.respond(
            method, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        try:
            self._write(method, response)
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up mid-body (a test cutting a download short): not our error.
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, method: str, response: Response) -> None:
        length = response.body_length
        head = [f"HTTP/1.1 {response.status} {phrase(response.status)}"]
        head.append(f"Server: {self.server_version}")
        head.append(f"Date: {self.date_time_string()}")
        head.append(f"Content-Type: {response.content_type}")
        if response.chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {length}")
        head.extend(f"{name}: {value}" for name, value in response.headers)
        if response.cut_after is not None:
            head.append("Connection: close")
        header_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD":
            self.wfile.write(header_bytes)
            return
        if not response.streamed:
            # Headers and body in one write: two small writes would hit Nagle/delayed-ACK stalls.
            self.wfile.write(header_bytes + response.body)
            return
        self.wfile.write(header_bytes)
        limit = length if response.cut_after is None else min(response.cut_after, length)
        for piece in _body_pieces(response, limit):
            if not response.chunked:
                self.wfile.write(piece)
            elif piece:  # an empty chunk would end the body early
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        if response.cut_after is not None:
            self.close_connection = True
            if response.cut_mode == "reset":
                # Linger 0 makes close() send RST instead of FIN: a genuine connection reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            # A cut chunked body also never gets its last chunk: the client cannot mistake it
            # for a complete answer.
            return
        if response.chunked:
            self.wfile.write(b"0\r\n\r\n")


def _body_pieces(response: Response, limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of a streamed body, in the pieces they are written in."""
    if response.audio is not None:
        yield from response.audio.iter_bytes(response.start, response.start + limit)
        return
    for at in range(0, limit, _BODY_PIECE):
        yield response.body[at : min(at + _BODY_PIECE, limit)]
