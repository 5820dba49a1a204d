"""A local stand-in for the Camb.ai TTS API, in the spirit of moto for AWS.

One :class:`CambEmulator` is one HTTP server on 127.0.0.1 (standard library only) that speaks
the endpoints the provider uses, hands out audio behind signed, expiring URLs on a second path
of the same server, and can be told to misbehave (rate limits, 5xx, latency, broken downloads).
Everything a test might want to check lands in a journal, which never holds the API key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import socketserver
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count as _count
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from airflow_provider_camb.testing._audio import AUDIO_FORMATS, AudioFile, make_audio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

log = logging.getLogger(__name__)

#: Endpoint names accepted by the fault-injection methods and recorded in the journal.
ENDPOINTS = (
    "create_tts",
    "tts_status",
    "tts_result",
    "tts_results",
    "tts_stream",
    "source_languages",
    "target_languages",
    "list_voices",
    "download",
)
#: Terminal outcomes a seeded task can be scripted to reach.
OUTCOMES = ("SUCCESS", "ERROR", "TIMEOUT", "PAYMENT_REQUIRED")

API_PREFIX = "/apis"
FILES_PREFIX = "/files/tts/"

_DEFAULT_REASONS: dict[str, tuple[str, str]] = {
    "ERROR": ("PROCESSING_ERROR", "The text could not be synthesised."),
    "TIMEOUT": ("PROCESSING_ERROR", "The task ran past the time limit; split the text into smaller parts."),
    "PAYMENT_REQUIRED": ("PAYMENT_REQUIRED", "Not enough credits to run this task."),
}

_SOURCE_LANGUAGES = [
    {"id": 1, "language": "English (United States)", "short_name": "en-us"},
    {"id": 2, "language": "English (United Kingdom)", "short_name": "en-uk"},
    {"id": 54, "language": "Spanish (Spain)", "short_name": "es-es"},
    {"id": 76, "language": "French (France)", "short_name": "fr-fr"},
    {"id": 31, "language": "German (Germany)", "short_name": "de-de"},
    {"id": 81, "language": "Hindi (India)", "short_name": "hi-in"},
]
_TARGET_LANGUAGES = [
    *_SOURCE_LANGUAGES,
    {"id": 87, "language": "Japanese (Japan)", "short_name": "ja-jp"},
    {"id": 139, "language": "Chinese (Mandarin, Simplified)", "short_name": "zh-cn"},
]
_VOICES = [
    {
        "id": 20298,
        "voice_name": "Ava",
        "gender": 2,
        "age": 30,
        "language": 1,
        "description": "warm, narration",
    },
    {"id": 20299, "voice_name": "Noah", "gender": 1, "age": 35, "language": 1, "description": "calm, news"},
    {"id": 20300, "voice_name": "Lucia", "gender": 2, "age": 28, "language": 54, "description": "bright"},
    {"id": 20301, "voice_name": "Arjun", "gender": 1, "age": 40, "language": 81, "description": "deep"},
]

# tts-stream formats the emulator can produce; the real enum also has mp3, adts and other PCM
# layouts, which answer 422 here rather than bytes that only pretend to be those formats.
_STREAM_FORMATS = ("wav", "flac", "pcm_s16le")
_INT_PATH = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class JournalEntry:
    """One request as the emulator saw it.

    :param method: HTTP method.
    :param path: the full request path without the query string, e.g. ``/apis/tts-results``
        or ``/files/tts/1001.flac``.
    :param endpoint: endpoint name (see :data:`ENDPOINTS`), or ``"unknown"``.
    :param query: query parameters (last value wins for repeated names).
    :param json: the parsed JSON body, or ``None`` when there was none or it did not parse.
    :param status: the status code answered.
    :param api_key_sent: whether an ``x-api-key`` header was present at all (its value is never kept).
    :param range: the ``Range`` header, if any.
    :param time: wall-clock time the request arrived (``time.time()``).
    """

    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    json: Any
    status: int
    api_key_sent: bool
    range: str | None
    time: float


@dataclass
class _Task:
    task_id: str
    outcome: str
    pending_polls: int
    ready_at: float  # time.monotonic() deadline for pending_seconds
    exception_reason: str | None
    message: Any
    run_id: int | None
    polls: int = 0

    def done(self, now: float) -> bool:
        return self.polls >= self.pending_polls and now >= self.ready_at


@dataclass
class _Run:
    run_id: int
    audio: AudioFile
    finished: bool
    task: _Task | None = None

    def is_finished(self, now: float) -> bool:
        # A run behind a task becomes fetchable when its task has reached SUCCESS.
        if self.task is not None:
            return self.task.done(now)
        return self.finished


@dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: float | str | None
    body: Any


@dataclass
class _Latency:
    seconds: float
    remaining: int | None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Audio responses stream [start, end) of a file instead of ``body``.
    audio: AudioFile | None = None
    start: int = 0
    end: int = 0
    # Download faults: stop after this many body bytes, then "reset" or "close".
    cut_after: int | None = None
    cut_mode: str = ""


def _json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=headers or [])


def _detail(status: int, message: str) -> _Response:
    return _json_response(status, {"detail": message})


def _validation(errors: list[dict[str, Any]]) -> _Response:
    return _json_response(422, {"detail": errors})


def _error(kind: str, loc: list[str | int], msg: str) -> dict[str, Any]:
    # FastAPI/pydantic-v2 shape; the SDK's ValidationError model needs loc, msg and type.
    return {"type": kind, "loc": loc, "msg": msg}


def _is_int(value: Any) -> bool:
    # JSON true/false arrive as bool, which Python counts as int; the API's models do not.
    return isinstance(value, int) and not isinstance(value, bool)


def _s3_error(status: int, code: str, message: str) -> _Response:
    # The download host imitates an object store, which answers in XML.
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return _Response(status, body.encode(), content_type="application/xml")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: CambEmulator) -> None:
        self.emulator = emulator
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall for
        # seconds on machines without a resolver; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def close_open_connections(self) -> None:
        # Idle keep-alive connections sit in a blocking read; without this they would keep
        # answering after stop() and a test could talk to a "stopped" emulator.
        with self.connections_lock:
            conns = list(self.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CambEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

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

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

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

    def _serve(self, method: str) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        response = self.server.emulator._handle(
            method, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        try:
            self._write(method, response)
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up mid-body (a test cutting a download short): not our error.
            self.close_connection = True

    def _write(self, method: str, response: _Response) -> None:
        length = response.end - response.start if response.audio is not None else len(response.body)
        head = [f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
        head.append(f"Server: {self.server_version}")
        head.append(f"Date: {self.date_time_string()}")
        head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {length}")
        head.extend(f"{name}: {value}" for name, value in response.headers)
        if response.cut_after is not None:
            head.append("Connection: close")
        header_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD":
            self.wfile.write(header_bytes)
            return
        if response.audio is None:
            # Headers and body in one write: two small writes would hit Nagle/delayed-ACK stalls.
            self.wfile.write(header_bytes + response.body)
            return
        self.wfile.write(header_bytes)
        limit = length if response.cut_after is None else min(response.cut_after, length)
        for chunk in response.audio.iter_bytes(response.start, response.start + limit):
            self.wfile.write(chunk)
        if response.cut_after is not None:
            self.close_connection = True
            if response.cut_mode == "reset":
                # Linger 0 makes close() send RST instead of FIN: a genuine connection reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()


class CambEmulator:
    """A local Camb.ai API server for tests, demos and benchmarks.

    Start it with ``with CambEmulator() as emu:`` or :meth:`start`/:meth:`stop`.  The API lives
    under :attr:`base_url` (``http://127.0.0.1:<port>/apis``) and requires the ``x-api-key``
    header; audio files live under ``/files/tts/`` behind signed, expiring URLs that need no key.

    The behaviour switches are plain attributes and may be changed at any time:

    * ``bulk_missing``: ``"omit"`` (default) leaves unknown or unfinished run IDs out of the
      ``POST /tts-results`` answer; ``"reject"`` answers 400 naming them.
    * ``bulk_value_shape``: ``"url"`` (default) answers ``{"<id>": "<url>"}``; ``"object"``
      answers ``{"<id>": {"output_url": "<url>"}}``.
    * ``unknown_task_status``: 404 (default) or 422 for ``GET /tts/{unknown}``.
    * ``url_ttl``: lifetime of signed URLs in seconds (default 3600).
    * ``default_pending_polls``, ``default_pending_seconds``, ``default_outcome``: how tasks
      created through ``POST /tts`` behave.

    :param api_key: the key clients must send as ``x-api-key``.
    :param port: TCP port on 127.0.0.1; 0 picks a free one.
    :param host: address to bind; only loopback addresses are accepted.
    """

    def __init__(self, api_key: str = "test-api-key", port: int = 0, host: str = "127.0.0.1") -> None:
        if not _is_loopback(host):
            raise ValueError(f"the emulator only binds loopback addresses, not {host!r}")
        self.api_key = api_key
        self.host = host
        self.port = port
        self.bulk_missing = "omit"
        self.bulk_value_shape = "url"
        self.unknown_task_status = 404
        self.url_ttl = 3600.0
        self.default_pending_polls = 0
        self.default_pending_seconds = 0.0
        self.default_outcome = "SUCCESS"
        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}
        self._runs: dict[int, _Run] = {}
        self._run_ids = _count(1001)
        self._journal: list[JournalEntry] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._latencies: dict[str, list[_Latency]] = {}
        self._download_cuts: deque[list[Any]] = deque()  # [mode, nbytes, remaining]
        self._secret = secrets.token_bytes(32)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CambEmulator:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((self.host, self.port), self)
            self.port = server.server_port
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="camb-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection.  Safe to call twice."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> CambEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<CambEmulator {self.host}:{self.port} {state}>"

    @property
    def server_url(self) -> str:
        """``http://127.0.0.1:<port>``, the root of the server (API and file paths hang off it).

        Known once the emulator has started (it stays readable after :meth:`stop`).
        """
        if self.port == 0:
            raise RuntimeError("the emulator has no port yet; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:<port>/apis``: what a Camb connection's host should be."""
        return self.server_url + API_PREFIX

    def connection_uri_json(self) -> str:
        """A JSON connection for ``AIRFLOW_CONN_CAMB_DEFAULT`` pointing at this emulator."""
        return json.dumps({"conn_type": "camb", "host": self.base_url, "password": self.api_key})

    # -- seeding ---------------------------------------------------------------------------

    def add_tts_tasks(
        self,
        count: int,
        *,
        pending_polls: int = 0,
        pending_seconds: float = 0.0,
        outcome: str = "SUCCESS",
        exception_reason: str | None = None,
        message: Any = None,
        size_bytes: int | None = None,
        duration_seconds: float = 1.0,
        audio_format: str = "flac",
        sample_rate: int = 22050,
    ) -> list[str]:
        """Create TTS tasks as if ``POST /tts`` had been called ``count`` times.

        A ``SUCCESS`` task gets its run (and run ID) at once, but the run ID is revealed by
        ``GET /tts/{task_id}`` and the audio is fetchable only once the task has succeeded.

        :param count: number of tasks.
        :param pending_polls: status polls that answer ``PENDING`` before the outcome.
        :param pending_seconds: seconds from creation during which polls answer ``PENDING``;
            both conditions must pass.
        :param outcome: ``SUCCESS``, ``ERROR``, ``TIMEOUT`` or ``PAYMENT_REQUIRED``.
        :param exception_reason: reported with a failed outcome; a fitting default otherwise.
        :param message: reported with a failed outcome (string or dict); a default otherwise.
        :param size_bytes: exact size of the audio file; overrides ``duration_seconds``.
        :param duration_seconds: length of the audio when no size is given.
        :param audio_format: ``flac`` or ``wav``.
        :param sample_rate: samples per second.
        :return: the new task IDs.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        _check_audio_args(audio_format)
        ids = []
        with self._lock:
            for _ in range(count):
                ids.append(
                    self._new_task(
                        outcome=outcome,
                        pending_polls=pending_polls,
                        pending_seconds=pending_seconds,
                        exception_reason=exception_reason,
                        message=message,
                        audio_kwargs={
                            "size_bytes": size_bytes,
                            "duration_seconds": duration_seconds,
                            "audio_format": audio_format,
                            "sample_rate": sample_rate,
                        },
                    ).task_id
                )
        return ids

    def add_tts_runs(
        self,
        count: int,
        *,
        size_bytes: int | None = None,
        duration_seconds: float = 1.0,
        audio_format: str = "flac",
        sample_rate: int = 22050,
        finished: bool = True,
    ) -> list[int]:
        """Create TTS runs directly (no task), ready for ``/tts-result`` and ``/tts-results``.

        :param count: number of runs.
        :param size_bytes: exact size of each audio file; overrides ``duration_seconds``.
        :param duration_seconds: length of the audio when no size is given.
        :param audio_format: ``flac`` or ``wav``.
        :param sample_rate: samples per second.
        :param finished: ``False`` makes runs that exist but are not done yet (400 on fetch,
            missing in bulk answers) until :meth:`finish_run`.
        :return: the new run IDs.
        """
        _check_audio_args(audio_format)
        with self._lock:
            runs = [
                self._new_run(
                    size_bytes=size_bytes,
                    duration_seconds=duration_seconds,
                    audio_format=audio_format,
                    sample_rate=sample_rate,
                    finished=finished,
                )
                for _ in range(count)
            ]
        return [run.run_id for run in runs]

    def finish_run(self, run_id: int) -> None:
        """Mark a run made with ``finished=False`` as done.

        :param run_id: the run.
        """
        with self._lock:
            self._runs[run_id].finished = True

    def run_id_for_task(self, task_id: str) -> int | None:
        """The run ID a task has (or will reveal on success); ``None`` for failing tasks.

        :param task_id: the task.
        """
        with self._lock:
            return self._tasks[task_id].run_id

    def _new_run(self, *, finished: bool, **audio_kwargs: Any) -> _Run:
        run_id = next(self._run_ids)
        run = _Run(run_id, make_audio(run_id, **audio_kwargs), finished)
        self._runs[run_id] = run
        return run

    def _new_task(
        self,
        *,
        outcome: str,
        pending_polls: int,
        pending_seconds: float,
        exception_reason: str | None,
        message: Any,
        audio_kwargs: dict[str, Any],
    ) -> _Task:
        default_reason, default_message = _DEFAULT_REASONS.get(outcome, (None, None))
        task = _Task(
            task_id=str(uuid.uuid4()),
            outcome=outcome,
            pending_polls=pending_polls,
            ready_at=time.monotonic() + pending_seconds,
            exception_reason=exception_reason if exception_reason is not None else default_reason,
            message=message if message is not None else default_message,
            run_id=None,
        )
        if outcome == "SUCCESS":
            run = self._new_run(finished=False, **audio_kwargs)
            run.task = task
            task.run_id = run.run_id
        self._tasks[task.task_id] = task
        return task

    # -- audio -----------------------------------------------------------------------------

    def _audio(self, run_id: int) -> AudioFile:
        with self._lock:
            return self._runs[run_id].audio

    def audio_size(self, run_id: int) -> int:
        """Size in bytes of the file served for ``run_id``.

        :param run_id: the run.
        """
        return self._audio(run_id).size

    def audio_sha256(self, run_id: int) -> str:
        """SHA-256 hex digest of the file served for ``run_id``, computed by streaming it.

        :param run_id: the run.
        """
        digest = hashlib.sha256()
        for chunk in self._audio(run_id).iter_bytes():
            digest.update(chunk)
        return digest.hexdigest()

    def iter_audio(self, run_id: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` of the file served for ``run_id`` (``end`` exclusive).

        :param run_id: the run.
        :param start: first byte offset.
        :param end: one past the last byte; ``None`` for the end of the file.
        """
        return self._audio(run_id).iter_bytes(start, end)

    def audio_info(self, run_id: int) -> dict[str, Any]:
        """Format facts of the file served for ``run_id``: format, content type, sample rate,
        frames (samples), channels, duration and size.

        :param run_id: the run.
        """
        audio = self._audio(run_id)
        return {
            "format": audio.audio_format,
            "content_type": audio.content_type,
            "sample_rate": audio.sample_rate,
            "frames": audio.n_samples,
            "channels": 1,
            "duration_seconds": audio.duration_seconds,
            "size_bytes": audio.size,
        }

    def download_url(self, run_id: int, ttl: float | None = None) -> str:
        """A freshly signed URL for the audio of ``run_id``.

        :param run_id: the run.
        :param ttl: lifetime in seconds; :attr:`url_ttl` when ``None``.
        """
        audio = self._audio(run_id)
        lifetime = self.url_ttl if ttl is None else ttl
        expires = f"{time.time() + lifetime:.3f}"
        path = f"{FILES_PREFIX}{run_id}.{audio.audio_format}"
        query = urlencode({"expires": expires, "signature": self._sign(path, expires)})
        return f"{self.server_url}{path}?{query}"

    def _sign(self, path: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        count: int = 1,
        status: int = 429,
        retry_after: float | str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``count`` requests to ``endpoint`` with ``status``.

        Faults act before authentication, like a gateway in front of the API would.
        Calls queue up: ``fail_next(e, 1, 429); fail_next(e, 1, 503)`` gives a 429 then a 503.

        :param endpoint: an endpoint name from :data:`ENDPOINTS`, or ``"*"`` for any.
        :param count: how many requests fail.
        :param status: the status code to answer.
        :param retry_after: value of a ``Retry-After`` header (seconds), if any.
        :param body: a JSON-able body (``str``/``bytes`` are sent as text); default
            ``{"detail": "<reason phrase>"}``.
        """
        _check_endpoint(endpoint)
        with self._lock:
            self._failures.setdefault(endpoint, deque()).append(_Failure(status, count, retry_after, body))

    def add_latency(self, endpoint: str, seconds: float, count: int | None = None) -> None:
        """Delay requests to ``endpoint`` by ``seconds`` before answering.

        For ``"download"`` the delay comes before the first byte, like a WAN round trip.

        :param endpoint: an endpoint name from :data:`ENDPOINTS`, or ``"*"``.
        :param seconds: the delay.
        :param count: how many requests to delay; ``None`` for every request from now on.
        """
        _check_endpoint(endpoint)
        with self._lock:
            self._latencies.setdefault(endpoint, []).append(_Latency(seconds, count))

    def reset_downloads_after(self, nbytes: int, count: int = 1) -> None:
        """The next ``count`` downloads send ``nbytes`` of body, then reset the connection (RST).

        :param nbytes: body bytes sent before the reset.
        :param count: how many downloads (GETs of signed URLs) are cut.
        """
        with self._lock:
            self._download_cuts.append(["reset", nbytes, count])

    def short_downloads(self, missing_bytes: int = 1, count: int = 1) -> None:
        """The next ``count`` downloads announce the full ``Content-Length`` but send
        ``missing_bytes`` fewer bytes, then close the connection.

        :param missing_bytes: how many bytes at the end are never sent.
        :param count: how many downloads are cut.
        """
        with self._lock:
            self._download_cuts.append(["short", missing_bytes, count])

    def clear_faults(self) -> None:
        """Drop every pending failure, latency and download cut."""
        with self._lock:
            self._failures.clear()
            self._latencies.clear()
            self._download_cuts.clear()

    def _take_failure(self, endpoint: str) -> _Failure | None:
        with self._lock:
            for name in (endpoint, "*"):
                queue = self._failures.get(name)
                if queue:
                    failure = queue[0]
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        queue.popleft()
                    return failure
        return None

    def _take_latency(self, endpoint: str) -> float:
        delay = 0.0
        with self._lock:
            for name in (endpoint, "*"):
                kept = []
                for latency in self._latencies.get(name, []):
                    delay += latency.seconds
                    if latency.remaining is not None:
                        latency.remaining -= 1
                        if latency.remaining <= 0:
                            continue
                    kept.append(latency)
                if name in self._latencies:
                    self._latencies[name] = kept
        return delay

    def _take_download_cut(self) -> tuple[str, int] | None:
        with self._lock:
            if not self._download_cuts:
                return None
            cut = self._download_cuts[0]
            cut[2] -= 1
            if cut[2] <= 0:
                self._download_cuts.popleft()
            return cut[0], cut[1]

    # -- journal ---------------------------------------------------------------------------

    @property
    def journal(self) -> list[JournalEntry]:
        """A copy of every request seen so far, oldest first."""
        with self._lock:
            return list(self._journal)

    def requests(self, endpoint: str) -> list[JournalEntry]:
        """The journal entries for one endpoint.

        :param endpoint: an endpoint name from :data:`ENDPOINTS` (or ``"unknown"``).
        """
        with self._lock:
            return [entry for entry in self._journal if entry.endpoint == endpoint]

    def clear_journal(self) -> None:
        """Forget every journal entry."""
        with self._lock:
            self._journal.clear()

    # -- request handling (called from server threads) ---------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        arrived = time.time()
        url = urlsplit(target)
        path = url.path
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        endpoint, params, allowed = _route(path)
        parsed: Any = None
        body_error: dict[str, Any] | None = None
        if not body.strip():
            body_error = _error("missing", ["body"], "Field required")
        else:
            try:
                parsed = json.loads(body)
            except ValueError:
                body_error = _error("json_invalid", ["body", 0], "JSON decode error")
        try:
            response = self._respond(
                method, path, endpoint, params, allowed, query, headers, body_error, parsed
            )
        except Exception:  # a bug in the emulator must still answer, like a real 500
            log.exception("camb-emulator: error while handling %s %s", method, path)
            response = _detail(500, "Internal Server Error")
        entry = JournalEntry(
            method=method,
            path=path,
            endpoint=endpoint,
            query=query,
            json=parsed,
            status=response.status,
            api_key_sent="x-api-key" in headers,
            range=headers.get("range"),
            time=arrived,
        )
        with self._lock:
            self._journal.append(entry)
        return response

    def _respond(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: list[str],
        allowed: tuple[str, ...],
        query: dict[str, str],
        headers: dict[str, str],
        body_error: dict[str, Any] | None,
        parsed: Any,
    ) -> _Response:
        if endpoint == "unknown":
            return _detail(404, "Not Found")
        if method not in allowed:
            return _json_response(405, {"detail": "Method Not Allowed"}, [("Allow", ", ".join(allowed))])
        delay = self._take_latency(endpoint)
        if delay > 0:
            time.sleep(delay)
        failure = self._take_failure(endpoint)
        if failure is not None:
            return _failure_response(failure)
        if endpoint == "download":
            return self._download(method, params[0], params[1], query, headers)
        sent_key = headers.get("x-api-key")
        if sent_key is None or not hmac.compare_digest(sent_key.encode(), self.api_key.encode()):
            return _detail(401, "Invalid API key")
        if method == "POST" and body_error is not None:
            return _validation([body_error])
        handler = getattr(self, f"_api_{endpoint}")
        result: _Response = handler(params, query, parsed, headers)
        return result

    def _api_create_tts(
        self, params: list[str], query: dict[str, str], payload: Any, headers: dict[str, str]
    ) -> _Response:
        errors = _check_model(
            payload,
            required={"text": str, "voice_id": int, "language": int},
            optional={
                "gender": int,
                "age": int,
                "folder_id": int,
                "project_name": str,
                "project_description": str,
            },
            lengths={"project_name": (3, 255), "project_description": (3, 5000)},
        )
        if errors:
            return _validation(errors)
        with self._lock:
            task = self._new_task(
                outcome=self.default_outcome,
                pending_polls=self.default_pending_polls,
                pending_seconds=self.default_pending_seconds,
                exception_reason=None,
                message=None,
                audio_kwargs={"duration_seconds": max(0.5, min(60.0, len(payload["text"]) * 0.06))},
            )
        return _json_response(200, {"task_id": task.task_id})

    def _api_tts_status(
        self, params: list[str], query: dict[str, str], payload: Any, headers: dict[str, str]
    ) -> _Response:
        task_id = params[0]
        now = time.monotonic()
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                if self.unknown_task_status == 422:
                    return _validation(
                        [_error("value_error", ["path", "task_id"], f"Task {task_id} not found")]
                    )
                return _detail(404, f"Task {task_id} not found")
            if not task.done(now):
                task.polls += 1
                answer: dict[str, Any] = {
                    "status": "PENDING",
                    "run_id": None,
                    "exception_reason": None,
                    "message": None,
                }
            elif task.outcome == "SUCCESS":
                answer = {
                    "status": "SUCCESS",
                    "run_id": task.run_id,
                    "exception_reason": None,
                    "message": None,
                }
            else:
                answer = {
                    "status": task.outcome,
                    "run_id": None,
                    "exception_reason": task.exception_reason,
                    "message": task.message,
                }
        return _json_response(200, answer)

    def _finished_run(self, run_id: int) -> _Run | None:
        with self._lock:
            run = self._runs.get(run_id)
            return run if run is not None and run.is_finished(time.monotonic()) else None

    def _api_tts_result(
        self, params: list[str], query: dict[str, str], payload: Any, headers: dict[str, str]
    ) -> _Response:
        raw_id = params[0]
        if not _INT_PATH.fullmatch(raw_id):
            return _validation(
                [
                    _error(
                        "int_parsing",
                        ["path", "run_id"],
                        "Input should be a valid integer, unable to parse string as an integer",
                    )
                ]
            )
        output_type = query.get("output_type", "raw_bytes")
        if output_type not in ("raw_bytes", "file_url"):
            return _validation(
                [_error("enum", ["query", "output_type"], "Input should be 'raw_bytes' or 'file_url'")]
            )
        run_id = int(raw_id)
        with self._lock:
            known = run_id in self._runs
        run = self._finished_run(run_id)
        if run is None:
            reason = "has not finished yet" if known else "is not a valid TTS run"
            return _detail(400, f"Run ID {run_id} {reason}")
        if output_type == "file_url":
            return _json_response(200, {"output_url": self.download_url(run_id)})
        return _audio_response(run.audio, headers.get("range"))

    def _api_tts_results(
        self, params: list[str], query: dict[str, str], payload: Any, headers: dict[str, str]
    ) -> _Response:
        errors = _check_run_ids(payload)
        if errors:
            return _validation(errors)
        run_ids: list[int] = payload["run_ids"]
        found = [rid for rid in run_ids if self._finished_run(rid) is not None]
        missing = [rid for rid in run_ids if rid not in found]
        if missing and self.bulk_missing == "reject":
            return _detail(400, f"Run IDs not found or not finished: {missing}")
        answer: dict[str, Any] = {}
        for rid in found:
            url = self.download_url(rid)
            answer[str(rid)] = {"output_url": url} if self.bulk_value_shape == "object" else url
        return _json_response(200, answer)

    def _api_tts_stream(
        self, params: list[str], query: dict[str, str], payload: Any, headers: dict[str, str]
    ) -> _Response:
        errors = _check_model(
            payload,
            required={"text": str, "language": str, "voice_id": int},
            optional={"speech_model": str, "user_instructions": str, "output_configuration": dict},
            lengths={"text": (3, 3000), "user_instructions": (3, 1000)},
        )
        if not isinstance(payload, dict):
            return _validation(errors)
        config = payload.get("output_configuration") or {}
        audio_format = config.get("format") or "wav"
        if audio_format not in _STREAM_FORMATS:
            errors.append(
                _error(
                    "enum",
                    ["body", "output_configuration", "format"],
                    "Input should be 'wav', 'flac' or 'pcm_s16le'"
                    f" (the emulator cannot produce {audio_format!r})",
                )
            )
        # The pro models speak at 48 kHz, the others at 22.05 kHz (see the API reference notes).
        pro = str(payload.get("speech_model") or "").startswith(("mars-pro", "mars-8.1-pro"))
        sample_rate = config.get("sample_rate") or (48000 if pro else 22050)
        if not _is_int(sample_rate) or not 8000 <= sample_rate <= 192000:
            errors.append(
                _error(
                    "value_error", ["body", "output_configuration", "sample_rate"], "Unsupported sample rate"
                )
            )
        if errors:
            return _validation(errors)
        text = payload["text"]
        seed = zlib.crc32(text.encode())
        duration = len(text) * 0.06
        credits = [("X-Credits-Required", str(len(text)))]
        if audio_format == "pcm_s16le":
            wav = make_audio(seed, audio_format="wav", sample_rate=sample_rate, duration_seconds=duration)
            return _Response(
                200,
                content_type="application/octet-stream",
                headers=credits,
                audio=wav,
                start=44,
                end=wav.size,
            )
        audio = make_audio(
            seed, audio_format=audio_format, sample_rate=sample_rate, duration_seconds=duration
        )
        return _Response(200, content_type=audio.content_type, headers=credits, audio=audio, end=audio.size)

    def _api_source_languages(self, *_: Any) -> _Response:
        return _json_response(200, _SOURCE_LANGUAGES)

    def _api_target_languages(self, *_: Any) -> _Response:
        return _json_response(200, _TARGET_LANGUAGES)

    def _api_list_voices(self, *_: Any) -> _Response:
        return _json_response(200, _VOICES)

    def _download(
        self, method: str, raw_id: str, ext: str, query: dict[str, str], headers: dict[str, str]
    ) -> _Response:
        path = f"{FILES_PREFIX}{raw_id}.{ext}"
        expires, signature = query.get("expires"), query.get("signature")
        if not expires or not signature:
            return _s3_error(
                403, "AccessDenied", "Query-string authentication requires expires and signature"
            )
        if not hmac.compare_digest(signature, self._sign(path, expires)):
            return _s3_error(
                403, "SignatureDoesNotMatch", "The request signature we calculated does not match"
            )
        try:
            expired = time.time() >= float(expires)
        except ValueError:
            expired = True
        if expired:
            return _s3_error(403, "AccessDenied", "Request has expired")
        with self._lock:
            run = self._runs.get(int(raw_id))
        if run is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        response = _audio_response(run.audio, headers.get("range"))
        if method == "GET" and response.audio is not None:
            cut = self._take_download_cut()
            if cut is not None:
                mode, amount = cut
                length = response.end - response.start
                response.cut_mode = mode
                response.cut_after = amount if mode == "reset" else max(0, length - amount)
        return response


def _route(path: str) -> tuple[str, list[str], tuple[str, ...]]:
    """Endpoint name, path parameters and allowed methods for ``path``."""
    if path.startswith(FILES_PREFIX):
        match = re.fullmatch(r"(\d+)\.(flac|wav)", path[len(FILES_PREFIX) :])
        if match:
            return "download", [match.group(1), match.group(2)], ("GET", "HEAD")
        return "unknown", [], ()
    if not path.startswith(API_PREFIX + "/"):
        return "unknown", [], ()
    rest = path[len(API_PREFIX) + 1 :]
    fixed = {
        "tts": ("create_tts", ("POST",)),
        "tts-results": ("tts_results", ("POST",)),
        "tts-stream": ("tts_stream", ("POST",)),
        "source-languages": ("source_languages", ("GET",)),
        "target-languages": ("target_languages", ("GET",)),
        "list-voices": ("list_voices", ("GET",)),
    }
    if rest in fixed:
        name, methods = fixed[rest]
        return name, [], methods
    head, _, tail = rest.partition("/")
    if tail and "/" not in tail:
        if head == "tts":
            return "tts_status", [tail], ("GET",)
        if head == "tts-result":
            return "tts_result", [tail], ("GET", "HEAD")
    return "unknown", [], ()


def _audio_response(audio: AudioFile, range_header: str | None) -> _Response:
    headers = [("Accept-Ranges", "bytes")]
    size = audio.size
    byte_range = _parse_range(range_header, size) if range_header else None
    if byte_range == "unsatisfiable":
        response = _s3_error(416, "InvalidRange", "The requested range is not satisfiable")
        response.headers = [("Content-Range", f"bytes */{size}")]
        return response
    if isinstance(byte_range, tuple):
        start, last = byte_range
        headers.append(("Content-Range", f"bytes {start}-{last}/{size}"))
        return _Response(
            206, content_type=audio.content_type, headers=headers, audio=audio, start=start, end=last + 1
        )
    return _Response(200, content_type=audio.content_type, headers=headers, audio=audio, start=0, end=size)


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` inclusive, ``"unsatisfiable"``, or ``None`` to ignore the header.

    Multi-range and malformed headers are ignored (a full 200 answer), as RFC 9110 allows.
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


def _failure_response(failure: _Failure) -> _Response:
    headers = []
    if failure.retry_after is not None:
        value = failure.retry_after
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        headers.append(("Retry-After", str(value)))
    body = failure.body
    if body is None:
        phrase = "Rate limit exceeded" if failure.status == 429 else _phrase(failure.status)
        return _json_response(failure.status, {"detail": phrase}, headers)
    if isinstance(body, bytes):
        return _Response(failure.status, body, content_type="text/plain", headers=headers)
    if isinstance(body, str):
        return _Response(
            failure.status, body.encode(), content_type="text/plain; charset=utf-8", headers=headers
        )
    return _json_response(failure.status, body, headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_TYPE_ERRORS = {
    int: ("int_type", "Input should be a valid integer"),
    str: ("string_type", "Input should be a valid string"),
    dict: ("dict_type", "Input should be a valid dictionary"),
}


def _check_model(
    payload: Any,
    *,
    required: dict[str, type],
    optional: dict[str, type],
    lengths: dict[str, tuple[int, int]],
) -> list[dict[str, Any]]:
    """Validation errors for a flat JSON object, worded like FastAPI with pydantic v2."""
    if not isinstance(payload, dict):
        return [
            _error(
                "model_attributes_type",
                ["body"],
                "Input should be a valid dictionary or object to extract fields from",
            )
        ]
    errors = []
    for name, kind in {**required, **optional}.items():
        if name not in payload or (name in optional and payload[name] is None):
            if name in required:
                errors.append(_error("missing", ["body", name], "Field required"))
            continue
        value = payload[name]
        ok = _is_int(value) if kind is int else isinstance(value, kind)
        if not ok:
            kind_name, msg = _TYPE_ERRORS[kind]
            errors.append(_error(kind_name, ["body", name], msg))
            continue
        if name in lengths:
            low, high = lengths[name]
            if len(value) < low:
                errors.append(
                    _error(
                        "string_too_short", ["body", name], f"String should have at least {low} characters"
                    )
                )
            elif len(value) > high:
                errors.append(
                    _error("string_too_long", ["body", name], f"String should have at most {high} characters")
                )
    return errors


def _check_run_ids(payload: Any) -> list[dict[str, Any]]:
    """Errors for a ``RunIDsRequestPayload``: 2..5 unique positive integers."""
    if not isinstance(payload, dict):
        return [
            _error(
                "model_attributes_type",
                ["body"],
                "Input should be a valid dictionary or object to extract fields from",
            )
        ]
    if "run_ids" not in payload:
        return [_error("missing", ["body", "run_ids"], "Field required")]
    run_ids = payload["run_ids"]
    if not isinstance(run_ids, list):
        return [_error("list_type", ["body", "run_ids"], "Input should be a valid list")]
    errors = []
    for i, value in enumerate(run_ids):
        if not _is_int(value):
            errors.append(_error("int_type", ["body", "run_ids", i], "Input should be a valid integer"))
        elif value <= 0:
            errors.append(_error("greater_than", ["body", "run_ids", i], "Input should be greater than 0"))
    if errors:
        return errors
    if len(run_ids) < 2:
        return [
            _error(
                "too_short",
                ["body", "run_ids"],
                f"List should have at least 2 items after validation, not {len(run_ids)}",
            )
        ]
    if len(run_ids) > 5:
        return [
            _error(
                "too_long",
                ["body", "run_ids"],
                f"List should have at most 5 items after validation, not {len(run_ids)}",
            )
        ]
    if len(set(run_ids)) != len(run_ids):
        return [_error("value_error", ["body", "run_ids"], "Value error, run_ids must be unique")]
    return []


def _check_endpoint(endpoint: str) -> None:
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS} or '*'")


def _check_audio_args(audio_format: str) -> None:
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, not {audio_format!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)
