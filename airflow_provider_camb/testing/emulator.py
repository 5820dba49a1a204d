"""A local stand-in for the Camb.ai TTS API, in the spirit of moto for AWS.

One :class:`CambEmulator` is one HTTP server on 127.0.0.1 (standard library only) that speaks
the endpoints the provider uses, hands out audio behind signed, expiring URLs on a second path
of the same server, and can be told to misbehave (rate limits, 5xx, latency, broken downloads
and streams, redirects to another host).  Everything a test might want to check lands in a
journal, which never holds the API key.

This module holds the emulator's state (tasks, runs) and the API's behaviour; the HTTP
plumbing, fault schedule, journal, URL signing, request validation, catalogue, tts-stream
answers and the foreign redirect host live in the private modules next to it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from itertools import count as _count
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_camb.hooks.result_kinds import RESULT_KINDS, result_kind
from airflow_provider_camb.testing import _control
from airflow_provider_camb.testing._audio import AUDIO_FORMATS, AudioFile, make_audio
from airflow_provider_camb.testing._catalogue import SOURCE_LANGUAGES, TARGET_LANGUAGES, VOICES
from airflow_provider_camb.testing._faults import FaultSchedule
from airflow_provider_camb.testing._foreign import ForeignHost
from airflow_provider_camb.testing._http import (
    Response,
    Server,
    audio_response,
    detail,
    json_response,
    s3_error,
)
from airflow_provider_camb.testing._journal import Journal, JournalEntry
from airflow_provider_camb.testing._kinds import (
    DEFAULT_PAYLOADS,
    FORM_KINDS,
    VALUE_SHAPES,
    audio_seconds,
    build_files,
    check_create,
    result_value,
)
from airflow_provider_camb.testing._multipart import describe_form, is_form, parse_form
from airflow_provider_camb.testing._routes import (
    API_PREFIX,
    CONTROL_PREFIX,
    ENDPOINTS,
    FILES_PREFIX,
    FILES_ROOT,
    KIND_ENDPOINTS,
    route,
)
from airflow_provider_camb.testing._signing import UrlSigner
from airflow_provider_camb.testing._tts_stream import answer as tts_stream_answer
from airflow_provider_camb.testing._validation import check_run_ids, error, validation

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from types import TracebackType

    from airflow_provider_camb.testing._http import ServedFile

__all__ = [
    "API_PREFIX",
    "CONTROL_PREFIX",
    "ENDPOINTS",
    "FILES_PREFIX",
    "KINDS",
    "OUTCOMES",
    "CambEmulator",
    "JournalEntry",
]

#: The batch kinds the emulator serves (names from :mod:`airflow_provider_camb.hooks.result_kinds`).
KINDS = tuple(RESULT_KINDS)

log = logging.getLogger(__name__)

#: Terminal outcomes a seeded task can be scripted to reach.
OUTCOMES = ("SUCCESS", "ERROR", "TIMEOUT", "PAYMENT_REQUIRED")

_DEFAULT_REASONS: dict[str, tuple[str, str]] = {
    "ERROR": ("PROCESSING_ERROR", "The text could not be synthesised."),
    "TIMEOUT": ("PROCESSING_ERROR", "The task ran past the time limit; split the text into smaller parts."),
    "PAYMENT_REQUIRED": ("PAYMENT_REQUIRED", "Not enough credits to run this task."),
}

_INT_PATH = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class _Request:
    """One request as the handlers see it."""

    method: str
    target: str  # path and query, as the client sent them
    endpoint: str
    params: list[str]
    allowed: tuple[str, ...]
    query: dict[str, str]
    headers: dict[str, str]
    body_error: dict[str, Any] | None
    parsed: Any


@dataclass
class _Task:
    kind: str
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
    audio: AudioFile  # the main audio file (the only one of a TTS run)
    finished: bool
    task: _Task | None = None
    kind: str = "tts"
    payload: dict[str, Any] = field(default_factory=dict)  # the body it was created with
    files: dict[str, tuple[ServedFile, str]] = field(default_factory=dict)  # name -> (file, ext)

    def is_finished(self, now: float) -> bool:
        # A run behind a task becomes fetchable when its task has reached SUCCESS.
        if self.task is not None:
            return self.task.done(now)
        return self.finished


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
    * ``method_bound_urls``: ``True`` (default) signs URLs for one HTTP method, as S3 does, so a
      ``HEAD`` of a URL handed out for ``GET`` is a 403; ``False`` lets ``GET`` URLs serve
      ``HEAD`` too.
    * ``stream_seconds_per_char``: seconds of ``POST /tts-stream`` audio per character of
      text (default 0.06).
    * ``default_pending_polls``, ``default_pending_seconds``, ``default_outcome``: how tasks
      created through ``POST /tts`` (and every other kind's create endpoint) behave.
    * ``dubbing_value_shape``: ``"object"`` (default) answers one ``{audio_url, video_url,
      transcript}`` per dubbing run (its first target language); ``"per_language"`` answers
      ``{"<language>": {...}}`` for every target language.
    * ``transcription_value_shape``: ``"object"`` (default) answers ``{"transcript": [...]}``;
      ``"list"`` answers the bare list.

    ``bulk_missing`` applies to every kind's bulk endpoint; ``bulk_value_shape`` to TTS only.

    :param api_key: the key clients must send as ``x-api-key``.
    :param port: TCP port on 127.0.0.1; 0 picks a free one.
    :param host: address to bind; only loopback addresses are accepted.
    :param control: serve the control API under ``/_emulator/`` on the same port (seeding,
        faults, journal, settings over HTTP, for an emulator run in another process); without
        it those paths answer 404 like any unknown path.
    """

    def __init__(
        self,
        api_key: str = "test-api-key",
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        control: bool = False,
    ) -> None:
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
        self.method_bound_urls = True
        self.stream_seconds_per_char = 0.06
        self.dubbing_value_shape = VALUE_SHAPES["dubbing_value_shape"][0]
        self.transcription_value_shape = VALUE_SHAPES["transcription_value_shape"][0]
        self.control = control
        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}
        self._runs: dict[int, _Run] = {}
        self._run_ids = _count(1001)
        self._journal = Journal()
        self._foreign_journal = Journal()
        self._faults = FaultSchedule()
        self._signer = UrlSigner()
        self._server: Server | None = None
        self._foreign = ForeignHost(host, self._handle_foreign)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CambEmulator:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = Server((self.host, self.port), self._handle)
            self.port = server.server_port
            self._server = server
            server.serve_in_background("camb-emulator")
        return self

    def stop(self) -> None:
        """Stop serving (the foreign redirect host too) and close every open connection.
        Safe to call twice."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._foreign.stop()

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

    def add_tasks(
        self,
        kind: str,
        count: int,
        *,
        pending_polls: int = 0,
        pending_seconds: float = 0.0,
        outcome: str = "SUCCESS",
        exception_reason: str | None = None,
        message: Any = None,
        payload: dict[str, Any] | None = None,
        size_bytes: int | None = None,
        duration_seconds: float = 1.0,
        audio_format: str = "flac",
        sample_rate: int = 22050,
    ) -> list[str]:
        """Create tasks of ``kind`` as if its create endpoint had been called ``count`` times.

        A ``SUCCESS`` task gets its run (and run ID) at once, but the run ID is revealed by the
        kind's status endpoint and the result is fetchable only once the task has succeeded.

        :param kind: a kind from :data:`KINDS` (``"tts"``, ``"dubbing"``, ...; ``-`` and case
            are forgiven).
        :param count: number of tasks.
        :param pending_polls: status polls that answer ``PENDING`` before the outcome.
        :param pending_seconds: seconds from creation during which polls answer ``PENDING``;
            both conditions must pass.
        :param outcome: ``SUCCESS``, ``ERROR``, ``TIMEOUT`` or ``PAYMENT_REQUIRED``.
        :param exception_reason: reported with a failed outcome; a fitting default otherwise.
        :param message: reported with a failed outcome (string or dict); a default otherwise.
        :param payload: the create body the tasks pretend to have been made with (it decides
            e.g. a dubbing run's languages or a translation's texts); a sample body when ``None``.
        :param size_bytes: exact size of each audio file; overrides ``duration_seconds``.
        :param duration_seconds: length of the audio when no size is given.
        :param audio_format: ``flac`` or ``wav``.
        :param sample_rate: samples per second.
        :return: the new task IDs.
        :raises ValueError: for an unknown kind or outcome, or a ``payload`` the create
            endpoint would refuse.
        """
        name = self._kind(kind, payload)
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        _check_audio_args(audio_format)
        audio_kwargs = {
            "size_bytes": size_bytes,
            "duration_seconds": duration_seconds,
            "audio_format": audio_format,
            "sample_rate": sample_rate,
        }
        ids = []
        with self._lock:
            for _ in range(count):
                ids.append(
                    self._new_task(
                        kind=name,
                        payload=payload,
                        outcome=outcome,
                        pending_polls=pending_polls,
                        pending_seconds=pending_seconds,
                        exception_reason=exception_reason,
                        message=message,
                        audio_kwargs=audio_kwargs,
                    ).task_id
                )
        return ids

    def add_runs(
        self,
        kind: str,
        count: int,
        *,
        finished: bool = True,
        payload: dict[str, Any] | None = None,
        size_bytes: int | None = None,
        duration_seconds: float = 1.0,
        audio_format: str = "flac",
        sample_rate: int = 22050,
    ) -> list[int]:
        """Create runs of ``kind`` directly (no task), ready for its result endpoints.

        :param kind: a kind from :data:`KINDS`.
        :param count: number of runs.
        :param finished: ``False`` makes runs that exist but are not done yet (400 on fetch,
            missing in bulk answers) until :meth:`finish_run`.
        :param payload: the create body the runs pretend to have been made with; a sample
            body when ``None``.
        :param size_bytes: exact size of each audio file; overrides ``duration_seconds``.
        :param duration_seconds: length of the audio when no size is given.
        :param audio_format: ``flac`` or ``wav``.
        :param sample_rate: samples per second.
        :return: the new run IDs.
        :raises ValueError: for an unknown kind or a ``payload`` the create endpoint would refuse.
        """
        name = self._kind(kind, payload)
        _check_audio_args(audio_format)
        with self._lock:
            runs = [
                self._new_run(
                    kind=name,
                    payload=payload,
                    size_bytes=size_bytes,
                    duration_seconds=duration_seconds,
                    audio_format=audio_format,
                    sample_rate=sample_rate,
                    finished=finished,
                )
                for _ in range(count)
            ]
        return [run.run_id for run in runs]

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

        Same as ``add_tasks("tts", ...)``: see :meth:`add_tasks` for the parameters.

        :return: the new task IDs.
        """
        return self.add_tasks(
            "tts",
            count,
            pending_polls=pending_polls,
            pending_seconds=pending_seconds,
            outcome=outcome,
            exception_reason=exception_reason,
            message=message,
            size_bytes=size_bytes,
            duration_seconds=duration_seconds,
            audio_format=audio_format,
            sample_rate=sample_rate,
        )

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

        Same as ``add_runs("tts", ...)``: see :meth:`add_runs` for the parameters.

        :return: the new run IDs.
        """
        return self.add_runs(
            "tts",
            count,
            finished=finished,
            size_bytes=size_bytes,
            duration_seconds=duration_seconds,
            audio_format=audio_format,
            sample_rate=sample_rate,
        )

    def finish_run(self, run_id: int) -> None:
        """Mark a run made with ``finished=False`` as done.

        :param run_id: the run.
        """
        with self._lock:
            self._runs[run_id].finished = True

    def finish_tasks(self, task_ids: Iterable[str]) -> None:
        """End the wait of pending tasks (of any kind): from their next status poll on they
        reach their outcome.

        For tasks seeded to stay ``PENDING`` "forever" (a huge ``pending_polls``) until a test
        says otherwise.

        :param task_ids: the tasks.
        """
        with self._lock:
            for task_id in task_ids:
                task = self._tasks[task_id]
                task.pending_polls = 0
                task.ready_at = 0.0

    def run_id_for_task(self, task_id: str) -> int | None:
        """The run ID a task of any kind has (or will reveal on success); ``None`` for failing
        tasks.

        :param task_id: the task.
        """
        with self._lock:
            return self._tasks[task_id].run_id

    def kind_of(self, task_or_run_id: str | int) -> str:
        """The kind of a task (by its string ID) or a run (by its integer ID).

        :param task_or_run_id: a task ID or a run ID.
        :raises KeyError: for an unknown ID.
        """
        with self._lock:
            if isinstance(task_or_run_id, str):
                return self._tasks[task_or_run_id].kind
            return self._runs[task_or_run_id].kind

    def reset(self) -> None:
        """Forget every task, run, scheduled fault and journal entry; the switches stay.

        Run IDs keep counting up, so a URL handed out before the reset never names a new file.
        """
        with self._lock:
            self._tasks.clear()
            self._runs.clear()
        self._faults.clear()
        self.clear_journal()

    def _kind(self, kind: str, payload: dict[str, Any] | None) -> str:
        name = result_kind(kind).name
        if payload is not None:
            errors = check_create(name, payload)
            if errors:
                raise ValueError(f"payload is not a valid {name} create body: {errors}")
        return name

    def _new_run(
        self, *, finished: bool, kind: str = "tts", payload: dict[str, Any] | None = None, **audio_kwargs: Any
    ) -> _Run:
        run_id = next(self._run_ids)
        body = dict(DEFAULT_PAYLOADS[kind] if payload is None else payload)
        audio = make_audio(run_id, **audio_kwargs)
        files = build_files(kind, run_id, body, audio, audio_kwargs) if kind != "tts" else {}
        run = _Run(run_id, audio, finished, kind=kind, payload=body, files=files)
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
        kind: str = "tts",
        payload: dict[str, Any] | None = None,
    ) -> _Task:
        default_reason, default_message = _DEFAULT_REASONS.get(outcome, (None, None))
        task = _Task(
            kind=kind,
            task_id=str(uuid.uuid4()),
            outcome=outcome,
            pending_polls=pending_polls,
            ready_at=time.monotonic() + pending_seconds,
            exception_reason=exception_reason if exception_reason is not None else default_reason,
            message=message if message is not None else default_message,
            run_id=None,
        )
        if outcome == "SUCCESS":
            run = self._new_run(finished=False, kind=kind, payload=payload, **audio_kwargs)
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

    def download_url(
        self, run_id: int, ttl: float | None = None, *, method: str = "GET", file: str | None = None
    ) -> str:
        """A freshly signed URL for the audio of ``run_id`` (or another of its files).

        The signature covers the HTTP method, as an S3 presigned URL's does: while
        :attr:`method_bound_urls` is on, the URL works only with ``method``.

        :param run_id: the run.
        :param ttl: lifetime in seconds; :attr:`url_ttl` when ``None``.
        :param method: the HTTP method the URL is signed for (``"HEAD"`` for a URL to ``HEAD``).
        :param file: for runs other than TTS, which file (see :meth:`file_names`); the run's
            main file when ``None``.
        :raises ValueError: for a file the run does not have.
        """
        with self._lock:
            run = self._runs[run_id]
        if run.kind == "tts":
            path = f"{FILES_PREFIX}{run_id}.{run.audio.audio_format}"
        else:
            if not run.files:
                raise ValueError(f"{run.kind} runs have no files")
            name = next(iter(run.files)) if file is None else file
            if name not in run.files:
                raise ValueError(f"run {run_id} has no file {name!r}; it has {list(run.files)}")
            path = f"{FILES_ROOT}{run.kind}/{run_id}-{name}.{run.files[name][1]}"
        lifetime = self.url_ttl if ttl is None else ttl
        return f"{self.server_url}{path}?{self._signer.query(path, lifetime, method)}"

    def file_names(self, run_id: int) -> list[str]:
        """The names of the files a run serves (``[]`` for TTS, whose one file is its audio),
        e.g. ``["foreground_audio", "background_audio"]``.

        :param run_id: the run.
        """
        with self._lock:
            return list(self._runs[run_id].files)

    def settings(self) -> dict[str, Any]:
        """The behaviour switches and their current values (what ``GET /_emulator/settings``
        answers)."""
        return {name: getattr(self, name) for name in _control.SETTINGS}

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        """Change several switches at once, checking every value first (nothing changes when one
        is wrong).

        :param changes: switch name to new value, e.g. ``bulk_missing="reject"``.
        :return: all the switches after the change.
        :raises ValueError: for an unknown switch or a value it does not take.
        """
        checked = _control.check_settings(changes)
        for name, value in checked.items():
            setattr(self, name, value)
        return self.settings()

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
        self._faults.fail_next(endpoint, count, status, retry_after, body)

    def redirect_next(self, count: int = 1, endpoint: str = "*", status: int = 302) -> None:
        """Redirect the next ``count`` API requests to ``endpoint`` to another loopback host.

        The answer is ``status`` with a ``Location`` naming the same path and query on
        :attr:`foreign_host`, a second listener this starts.  The foreign host answers like the
        API but does not ask for the key, so a client that wrongly follows the redirect
        succeeds; :attr:`redirected_requests` shows whether it sent its ``x-api-key`` there.
        Redirects act after scheduled failures and before the API-key check; signed-URL
        downloads are never redirected.

        :param count: how many requests are redirected.
        :param endpoint: an API endpoint name from :data:`ENDPOINTS`, or ``"*"`` for any.
        :param status: 301, 302, 303, 307 or 308 (307/308 make clients repeat a ``POST``
            with its body; 301-303 make most clients switch to ``GET``).
        """
        self._faults.redirect_next(endpoint, count, status)
        self._foreign.ensure_started()

    @property
    def foreign_host(self) -> str:
        """``host:port`` that redirects point at, e.g. ``127.0.0.2:40123``.

        The host is never the emulator's own (``localhost`` where only 127.0.0.1 can be bound).

        :raises RuntimeError: before the first :meth:`redirect_next`.
        """
        return self._foreign.host

    @property
    def redirected_requests(self) -> list[JournalEntry]:
        """A copy of every request the foreign host received, oldest first.

        An entry with ``api_key_sent`` set means a client carried its key to another host.
        """
        return self._foreign_journal.entries()

    def add_latency(self, endpoint: str, seconds: float, count: int | None = None) -> None:
        """Delay requests to ``endpoint`` by ``seconds`` before answering.

        For ``"download"`` the delay comes before the first byte, like a WAN round trip.

        :param endpoint: an endpoint name from :data:`ENDPOINTS`, or ``"*"``.
        :param seconds: the delay.
        :param count: how many requests to delay; ``None`` for every request from now on.
        """
        self._faults.add_latency(endpoint, seconds, count)

    def reset_downloads_after(self, nbytes: int, count: int = 1) -> None:
        """The next ``count`` downloads send ``nbytes`` of body, then reset the connection (RST).

        :param nbytes: body bytes sent before the reset.
        :param count: how many downloads (GETs of signed URLs) are cut.
        """
        self._faults.cut_bodies("download", "reset", nbytes, count)

    def short_downloads(self, missing_bytes: int = 1, count: int = 1) -> None:
        """The next ``count`` downloads announce the full ``Content-Length`` but send
        ``missing_bytes`` fewer bytes, then close the connection.

        :param missing_bytes: how many bytes at the end are never sent.
        :param count: how many downloads are cut.
        """
        self._faults.cut_bodies("download", "short", missing_bytes, count)

    def reset_streams_after(self, nbytes: int, count: int = 1) -> None:
        """The next ``count`` successful ``POST /tts-stream`` answers send ``nbytes`` of audio,
        then reset the connection (RST) before the chunked body has ended.

        :param nbytes: audio bytes sent before the reset.
        :param count: how many streams are cut.
        """
        self._faults.cut_bodies("tts_stream", "reset", nbytes, count)

    def clear_faults(self) -> None:
        """Drop every pending failure, redirect, latency, download cut and stream cut."""
        self._faults.clear()

    # -- journal ---------------------------------------------------------------------------

    @property
    def journal(self) -> list[JournalEntry]:
        """A copy of every request seen so far, oldest first."""
        return self._journal.entries()

    def requests(self, endpoint: str) -> list[JournalEntry]:
        """The journal entries for one endpoint.

        :param endpoint: an endpoint name from :data:`ENDPOINTS` (or ``"unknown"``).
        """
        return self._journal.entries(endpoint)

    def clear_journal(self) -> None:
        """Forget every journal entry, :attr:`redirected_requests` included."""
        self._journal.clear()
        self._foreign_journal.clear()

    # -- request handling (called from server threads) ---------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        if self.control:
            path = urlsplit(target).path
            if path.startswith(CONTROL_PREFIX) or path == CONTROL_PREFIX.rstrip("/"):
                # The control API is the test's own channel: no key, no faults, no journal.
                try:
                    return _control.handle(self, method, target, body)
                except Exception:
                    log.exception("camb-emulator: error in control request %s %s", method, path)
                    return detail(500, "Internal Server Error")
        return self._serve(method, target, headers, body, foreign=False)

    def _handle_foreign(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        return self._serve(method, target, headers, body, foreign=True)

    def _serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes, *, foreign: bool
    ) -> Response:
        arrived = time.time()
        url = urlsplit(target)
        endpoint, params, allowed = route(url.path)
        parsed: Any = None
        journal_body: Any = None
        body_error: dict[str, Any] | None = None
        form_kind = KIND_ENDPOINTS.get(endpoint, ("", ""))
        takes_form = form_kind[1] == "create" and form_kind[0] in FORM_KINDS
        if takes_form and is_form(headers.get("content-type")):
            form = parse_form(headers["content-type"], body)
            if form is None:
                body_error = error("value_error", ["body"], "There was an error parsing the body")
            else:
                parsed, journal_body = form, describe_form(form)
        elif not body.strip():
            body_error = error("missing", ["body"], "Field required")
        else:
            try:
                parsed = journal_body = json.loads(body)
            except ValueError:
                body_error = error("json_invalid", ["body", 0], "JSON decode error")
        request = _Request(
            method=method,
            target=target,
            endpoint=endpoint,
            params=params,
            allowed=allowed,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            body_error=body_error,
            parsed=parsed,
        )
        try:
            response = self._respond_foreign(request) if foreign else self._respond(request)
        except Exception:  # a bug in the emulator must still answer, like a real 500
            log.exception("camb-emulator: error while handling %s %s", method, url.path)
            response = detail(500, "Internal Server Error")
        entry = JournalEntry(
            method=method,
            path=url.path,
            endpoint=endpoint,
            query=request.query,
            json=journal_body,
            status=response.status,
            api_key_sent="x-api-key" in headers,
            range=headers.get("range"),
            time=arrived,
        )
        (self._foreign_journal if foreign else self._journal).append(entry)
        return response

    def _routing_refusal(self, request: _Request) -> Response | None:
        # 404 for paths the emulator does not serve, 405 for methods the endpoint does not take.
        if request.endpoint == "unknown":
            return detail(404, "Not Found")
        # A method-bound signature is checked before the method: S3 answers a PUT (or any other
        # method) on a URL signed for GET with 403 SignatureDoesNotMatch, not 405.
        bound_download = request.endpoint == "download" and self.method_bound_urls
        if request.method not in request.allowed and not bound_download:
            return json_response(
                405, {"detail": "Method Not Allowed"}, [("Allow", ", ".join(request.allowed))]
            )
        return None

    def _respond(self, request: _Request) -> Response:
        refusal = self._routing_refusal(request)
        if refusal is not None:
            return refusal
        endpoint = request.endpoint
        delay = self._faults.take_latency(endpoint)
        if delay > 0:
            time.sleep(delay)
        failure = self._faults.take_failure(endpoint)
        if failure is not None:
            return failure.response()
        if endpoint == "download":
            return self._download(request)
        redirect = self._faults.take_redirect(endpoint)
        if redirect is not None:
            # location() (re)starts the listener, which a stop() and start() may have closed.
            location = self._foreign.location(request.target)
            response = detail(redirect.status, f"Moved to {self._foreign.host}")
            response.headers.append(("Location", location))
            return response
        sent_key = request.headers.get("x-api-key")
        if sent_key is None or not hmac.compare_digest(sent_key.encode(), self.api_key.encode()):
            return detail(401, "Invalid API key")
        return self._api(request)

    def _respond_foreign(self, request: _Request) -> Response:
        # The place a redirect leads: it answers like the API, minus the key check (a client
        # that leaked its key should not notice) and minus the faults, which are the main
        # host's schedule.
        refusal = self._routing_refusal(request)
        if refusal is not None:
            return refusal
        if request.endpoint == "download":
            return self._download(request)
        return self._api(request)

    def _api(self, request: _Request) -> Response:
        if request.method == "POST" and request.body_error is not None:
            return validation([request.body_error])
        if request.endpoint in KIND_ENDPOINTS:
            kind, operation = KIND_ENDPOINTS[request.endpoint]
            if operation == "create":
                return self._create(kind, request.parsed)
            if operation == "status":
                return self._status(kind, request.params[0])
            if operation == "result":
                return self._result(kind, request.params[0], request.query, request.headers)
            return self._results(kind, request.parsed)
        handler = getattr(self, f"_api_{request.endpoint}")
        result: Response = handler(request.params, request.query, request.parsed, request.headers)
        return result

    def _create(self, kind: str, payload: Any) -> Response:
        errors = check_create(kind, payload)
        if errors:
            return validation(errors)
        seconds = audio_seconds(kind, payload, 1.0)
        with self._lock:
            task = self._new_task(
                kind=kind,
                payload=payload,
                outcome=self.default_outcome,
                pending_polls=self.default_pending_polls,
                pending_seconds=self.default_pending_seconds,
                exception_reason=None,
                message=None,
                audio_kwargs={"duration_seconds": seconds},
            )
        return json_response(200, {"task_id": task.task_id})

    def _status(self, kind: str, task_id: str) -> Response:
        now = time.monotonic()
        with self._lock:
            task = self._tasks.get(task_id)
            # Another kind's task is unknown here, as the real API's per-kind tables would have it.
            if task is None or task.kind != kind:
                if self.unknown_task_status == 422:
                    return validation(
                        [error("value_error", ["path", "task_id"], f"Task {task_id} not found")]
                    )
                return detail(404, f"Task {task_id} not found")
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
        return json_response(200, answer)

    def _finished_run(self, run_id: int, kind: str | None = None) -> _Run | None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or (kind is not None and run.kind != kind):
                return None
            return run if run.is_finished(time.monotonic()) else None

    def _value(self, run: _Run) -> Any:
        if run.kind == "tts":
            url = self.download_url(run.run_id)
            return {"output_url": url} if self.bulk_value_shape == "object" else url
        shapes = {name: getattr(self, name) for name in VALUE_SHAPES}
        return result_value(
            run.kind,
            run.run_id,
            run.payload,
            lambda name: self.download_url(run.run_id, file=name),
            shapes,
        )

    def _result(self, kind: str, raw_id: str, query: dict[str, str], headers: dict[str, str]) -> Response:
        if not _INT_PATH.fullmatch(raw_id):
            return validation(
                [
                    error(
                        "int_parsing",
                        ["path", "run_id"],
                        "Input should be a valid integer, unable to parse string as an integer",
                    )
                ]
            )
        output_type = query.get("output_type", "raw_bytes")
        if kind == "tts" and output_type not in ("raw_bytes", "file_url"):
            return validation(
                [error("enum", ["query", "output_type"], "Input should be 'raw_bytes' or 'file_url'")]
            )
        run_id = int(raw_id)
        with self._lock:
            known = run_id in self._runs and self._runs[run_id].kind == kind
        run = self._finished_run(run_id, kind)
        if run is None:
            label = "TTS" if kind == "tts" else kind.replace("_", " ")
            reason = "has not finished yet" if known else f"is not a valid {label} run"
            return detail(400, f"Run ID {run_id} {reason}")
        if kind != "tts":
            return json_response(200, self._value(run))
        if output_type == "file_url":
            return json_response(200, {"output_url": self.download_url(run_id)})
        return audio_response(run.audio, headers.get("range"))

    def _results(self, kind: str, payload: Any) -> Response:
        errors = check_run_ids(payload)
        if errors:
            return validation(errors)
        run_ids: list[int] = payload["run_ids"]
        found = {rid: run for rid in run_ids if (run := self._finished_run(rid, kind)) is not None}
        missing = [rid for rid in run_ids if rid not in found]
        if missing and self.bulk_missing == "reject":
            return detail(400, f"Run IDs not found or not finished: {missing}")
        return json_response(200, {str(rid): self._value(run) for rid, run in found.items()})

    def _api_tts_stream(
        self, params: list[str], query: dict[str, str], payload: Any, headers: dict[str, str]
    ) -> Response:
        response = tts_stream_answer(payload, self.stream_seconds_per_char)
        if response.status == 200:
            self._apply_cut("tts_stream", response)
        return response

    def _api_source_languages(self, *_: Any) -> Response:
        return json_response(200, SOURCE_LANGUAGES)

    def _api_target_languages(self, *_: Any) -> Response:
        return json_response(200, TARGET_LANGUAGES)

    def _api_list_voices(self, *_: Any) -> Response:
        return json_response(200, VOICES)

    def _download(self, request: _Request) -> Response:
        kind, raw_id, name, ext = request.params
        if kind == "tts":
            path = f"{FILES_PREFIX}{raw_id}.{ext}"
        else:
            path = f"{FILES_ROOT}{kind}/{raw_id}-{name}.{ext}"
        # With the switch off, a URL signed for GET serves HEAD too (the old, laxer behaviour).
        signed_for = request.method if self.method_bound_urls else "GET"
        refusal = self._signer.refusal(path, request.query, signed_for)
        if refusal is not None:
            return s3_error(403, *refusal)
        if request.method not in request.allowed:  # a PUT signed for PUT: the store is read-only
            return s3_error(
                405, "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
        served: ServedFile | None = None
        with self._lock:
            run = self._runs.get(int(raw_id))
            if run is not None and run.kind == kind:
                if kind == "tts":
                    served = run.audio
                elif name in run.files and run.files[name][1] == ext:
                    served = run.files[name][0]
        if served is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        response = audio_response(served, request.headers.get("range"))
        if request.method == "GET" and response.audio is not None:
            self._apply_cut("download", response)
        return response

    def _apply_cut(self, endpoint: str, response: Response) -> None:
        # Body cuts (reset after n bytes, or n bytes short) scheduled for this endpoint.
        cut = self._faults.take_cut(endpoint)
        if cut is None:
            return
        response.cut_mode = cut.mode
        response.cut_after = cut.nbytes if cut.mode == "reset" else max(0, response.body_length - cut.nbytes)


def _check_audio_args(audio_format: str) -> None:
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, not {audio_format!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)
