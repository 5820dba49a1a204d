"""CambHook: the one place that speaks HTTP to the Camb.ai API."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx
import requests
import tenacity
from airflow.sdk import BaseHook
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from airflow_provider_camb.exceptions import (
    CambAPIError,
    CambAuthError,
    CambConnectionConfigError,
    CambRunsMissingError,
    CambStreamBrokenError,
)
from airflow_provider_camb.hooks._async_http import shared_async_client
from airflow_provider_camb.hooks._sessions import USER_AGENT, EnvironmentSession
from airflow_provider_camb.hooks.result_kinds import RESULT_KINDS, TTS, ResultKind, result_kind
from airflow_provider_camb.hooks.result_values import read_value
from airflow_provider_camb.hooks.retry_policy import (
    RETRYABLE_STATUS_CODES,
    WaitRetryAfterOrBackoff,
    parse_retry_after,
)
from airflow_provider_camb.hooks.task_status import CambTaskStatus
from airflow_provider_camb.utils.redaction import redact_url, scrub_secret
from airflow_provider_camb.utils.run_ids import normalise_run_ids, plan_chunks

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from airflow.sdk import Connection

    from airflow_provider_camb.speech.request import TTSStreamRequest

DEFAULT_BASE_URL = "https://client.camb.ai/apis"
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 5
#: The connection Test (UI button, ``airflow connections test``) waits this long per phase and
#: never retries: a person is watching a spinner, and a dead host must answer in seconds.
TEST_CONNECTION_TIMEOUT_SECONDS = 5.0
#: The labels of the connection form's fields, so messages name what the user sees.
API_KEY_LABEL = "API Key"

#: What the error helpers read from an answer: requests' and httpx's responses both fit.
AnyResponse = requests.Response | httpx.Response

# The answers that mean "these run IDs are not servable", as opposed to "the service is unwell".
ID_REJECTION_STATUS_CODES = frozenset({400, 404, 422})


class _KeyGuardingSession(EnvironmentSession):
    """A session that never carries the API key to another origin, even if a caller follows a
    redirect through it (requests strips only ``Authorization`` across hosts, never custom
    headers such as ``x-api-key``)."""

    def __init__(self, api_origin: str) -> None:
        super().__init__()
        self.api_origin = api_origin

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # no ~/.netrc credentials either
        if _origin(prepared_request.url or "") != self.api_origin:
            prepared_request.headers.pop("x-api-key", None)


@dataclass(frozen=True)
class TTSStreamInfo:
    """What one synthesised text came back as.

    :param content_type: the answer's ``Content-Type``.
    :param credits: the ``X-Credits-Required`` header as a number, ``None`` if absent.
    :param bytes: body bytes received.
    """

    content_type: str | None
    credits: float | None
    bytes: int


class TTSStream:
    """The audio of one ``POST /tts-stream`` answer, read as it arrives (see ``CambHook.stream_tts``)."""

    #: Bytes per read: large enough to keep the copy cheap, small enough for flat memory.
    chunk_size = 256 * 1024

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.content_type: str | None = response.headers.get("Content-Type")
        self.credits = _credits(response.headers.get("X-Credits-Required"))
        self.bytes_read = 0

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in chunks; raises :class:`CambStreamBrokenError` if it breaks off or is empty."""
        read = self._response.raw.read
        try:
            while chunk := read(self.chunk_size, decode_content=True):
                self.bytes_read += len(chunk)
                yield chunk
        except (Urllib3HTTPError, requests.RequestException, OSError) as err:
            raise CambStreamBrokenError(
                f"the audio stream broke off after {self.bytes_read} bytes ({type(err).__name__})",
                status_code=self._response.status_code,
                endpoint="POST /tts-stream",
            ) from None
        if self.bytes_read == 0:
            raise CambStreamBrokenError(
                "the answer carried no audio",
                status_code=self._response.status_code,
                endpoint="POST /tts-stream",
            )


@dataclass(frozen=True)
class CambConnectionSettings:
    """What the hook needs from the ``camb`` connection, checked once."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float
    max_retries: int


@dataclass(frozen=True)
class BulkResults:
    """The answer of :meth:`CambHook.fetch_bulk_results`: what arrived and what did not.

    :param found: ``run_id -> result`` for every run delivered, in request order.
    :param missing: ``run_id -> reason`` for every run that was not (``None``: no reason given).
    :param what: what a run should have come back with (``"audio URL"``...), for messages.
    """

    found: dict[int, Any]
    missing: dict[int, str | None]
    what: str = "audio URL"

    def error(self) -> CambRunsMissingError:
        """The error naming every missing run (and carrying the results that arrived)."""
        return CambRunsMissingError(self.found, self.missing, self.what)

    def raise_if_missing(self) -> dict[int, Any]:
        """``found``, or :class:`CambRunsMissingError` if any run is missing."""
        if self.missing:
            raise self.error()
        return self.found


class CambHook(BaseHook):
    """Talks to the Camb.ai REST API with the API key from a ``camb`` connection.

    One keep-alive HTTP session per hook; every request has a timeout; connection errors,
    timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter, honouring
    ``Retry-After``; any other error raises :class:`~airflow_provider_camb.exceptions.CambAPIError`.

    :param camb_conn_id: the Airflow connection holding the API key (password field) and,
        optionally, the API base URL (host field; default ``https://client.camb.ai/apis``).
    :param timeout: seconds to wait for each response; overrides the connection's ``timeout``.
    :param max_retries: retries after the first attempt; overrides the connection's ``max_retries``.
    """

    conn_name_attr = "camb_conn_id"
    default_conn_name = "camb_default"
    conn_type = "camb"
    hook_name = "Camb.ai"

    #: how the hook sleeps between retries; tests replace it to keep fast.
    retry_sleep: ClassVar[Callable[[float], None]] = tenacity.nap.sleep
    #: the same for the async calls of triggers (never a blocking sleep on the event loop).
    async_retry_sleep: ClassVar[Callable[[float], Awaitable[None]]] = asyncio.sleep

    def __init__(
        self,
        camb_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__()
        self.camb_conn_id = camb_conn_id
        self._timeout_override = timeout
        self._max_retries_override = max_retries
        self._settings: CambConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(camb_conn_id={self.camb_conn_id!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Copies (Airflow deep-copies operators holding a hook) start without a session or lock.
        state = self.__dict__.copy()
        state["_session"] = None
        del state["_session_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session_lock = threading.Lock()

    # -- connection -----------------------------------------------------------------------

    @property
    def settings(self) -> CambConnectionSettings:
        """The connection's settings, read on first use (never in ``__init__``: DAG parsing)."""
        if self._settings is None:
            connection = self.get_connection(self.camb_conn_id)
            self._settings = self._settings_from(connection, connection.extra_dejson)
        return self._settings

    async def aload_connection(self) -> CambConnectionSettings:
        """Read the connection without blocking the event loop (for triggers)."""
        if self._settings is None:
            connection = await self.aget_connection(self.camb_conn_id)
            # The sync extra_dejson masks secrets through a blocking call to the supervisor, which
            # the triggerer refuses (DeadlockImminentError) while other triggers talk to it.
            aextra = getattr(connection, "aextra_dejson", None)
            extra = await aextra() if aextra is not None else connection.extra_dejson
            self._settings = self._settings_from(connection, extra)
        return self._settings

    def _settings_from(self, connection: Connection, extra: dict[str, Any]) -> CambConnectionSettings:
        api_key = (connection.password or "").strip()
        if not api_key:
            raise CambConnectionConfigError(
                f"The Camb.ai connection {self.camb_conn_id!r} has no API key: fill in its "
                f"'{API_KEY_LABEL}' field (the password field of a connection made outside the UI)."
            )
        return CambConnectionSettings(
            base_url=_base_url(connection.host, connection.port, connection.schema),
            api_key=api_key,
            timeout=_timeout_seconds(self._timeout_override, extra.get("timeout")),
            max_retries=_retry_count(self._max_retries_override, extra.get("max_retries")),
        )

    def get_conn(self) -> requests.Session:
        """The hook's keep-alive session, carrying the API key and User-Agent headers."""
        with self._session_lock:
            if self._session is None:
                session = _KeyGuardingSession(_origin(self.settings.base_url))
                session.headers.update(
                    {
                        "x-api-key": self.settings.api_key,
                        "User-Agent": USER_AGENT,
                        "Accept": "application/json",
                    }
                )
                self._session = session
            return self._session

    def close(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with one cheap read-only call that succeeds for any valid key.

        Answers within seconds whatever the host does: a short timeout and no retries. The
        messages name the form's fields, never the connection ID (the UI tests a copy of the
        connection under a random ID).
        """
        try:
            settings = self.settings
        except CambConnectionConfigError as err:
            return False, _without_conn_id(str(err), self.camb_conn_id)
        try:
            response = self._request(
                "GET", "/source-languages", timeout=TEST_CONNECTION_TIMEOUT_SECONDS, max_retries=0
            )
            languages = response.json()
        except CambAuthError as err:
            return False, (
                f"Camb.ai rejected the API key (HTTP {err.status_code}). Check the '{API_KEY_LABEL}' field."
            )
        except CambAPIError as err:
            return False, f"{err} Check the 'API Base URL' field ({settings.base_url})."
        except ValueError as err:
            return False, f"{settings.base_url} did not answer like the Camb.ai API: {err}"
        count = len(languages) if isinstance(languages, list) else "some"
        return True, f"Connected to Camb.ai at {settings.base_url} ({count} source languages)."

    # -- API calls ------------------------------------------------------------------------

    def get_tts_task_status(self, task_id: str) -> CambTaskStatus:
        """The status of one TTS task, from ``GET /tts/{task_id}``.

        :param task_id: the ``task_id`` returned when the task was created.
        """
        return self.get_task_status(task_id, "tts")

    async def aget_tts_task_status(self, task_id: str) -> CambTaskStatus:
        """:meth:`get_tts_task_status` on the event loop (see :meth:`aget_task_status`)."""
        return await self.aget_task_status(task_id, "tts")

    def get_task_status(self, task_id: str, kind: str | ResultKind = "tts") -> CambTaskStatus:
        """The status of one task of any kind, from ``GET /<kind>/{task_id}`` (``/dub/{task_id}``...).

        :param task_id: the ``task_id`` returned when the task was created.
        :param kind: ``tts``, ``dubbing``, ``translation``, ``text_to_sound``, ``transcription``,
            ``audio_separation`` or ``stories``.
        """
        task_id, resolved = _checked_task_id(task_id), _kind(kind)
        response = self._request("GET", _status_path(resolved, task_id))
        return _status_from(resolved, task_id, response)

    async def aget_task_status(self, task_id: str, kind: str | ResultKind = "tts") -> CambTaskStatus:
        """:meth:`get_task_status` on the event loop, for triggers: no thread, no blocking.

        The same retries (``asyncio.sleep`` between them, honouring ``Retry-After``), the same
        errors and the same reading of the answer as the blocking call; its log lines come from
        the trigger's own task, so the triggerer routes them to the task's log.
        """
        task_id, resolved = _checked_task_id(task_id), _kind(kind)
        response = await self._arequest("GET", _status_path(resolved, task_id))
        return _status_from(resolved, task_id, response)

    def get_tts_result_url(self, run_id: int | str) -> str:
        """A fresh signed audio URL for one run, from ``GET /tts-result/{run_id}?output_type=file_url``.

        :param run_id: a positive integer run ID (a numeric string is accepted).
        """
        (checked,) = normalise_run_ids([run_id])
        url, reason = self._single_result(TTS, checked)
        if url is None:
            raise CambRunsMissingError({}, {checked: reason})
        return str(url)

    def _single_result(self, kind: ResultKind, run_id: int) -> tuple[Any, str | None]:
        """``(result, None)``, or ``(None, reason)`` when the API says this run cannot be served."""
        # TTS answers the audio itself unless asked for a URL; the other kinds answer JSON.
        params = {"output_type": "file_url"} if kind is TTS else None
        path = kind.result_path.format(run_id=run_id)
        try:
            response = self._request("GET", path, params=params)
        except CambAPIError as err:
            if err.status_code not in ID_REJECTION_STATUS_CODES:
                raise
            return None, err.message
        return read_value(kind, _json(response, f"GET {kind.result_path}"))

    def get_tts_results(self, run_ids: object) -> dict[int, str]:
        """Audio URLs for any number of TTS runs, in the fewest calls the API allows.

        The TTS case of :meth:`get_bulk_results`: ``run_id -> URL`` in input order.

        :param run_ids: one run ID or an iterable of them (ints or numeric strings).
        :raises InvalidRunIdsError: for invalid input, before any request.
        :raises CambRunsMissingError: if any run came back without a URL; it carries the URLs
            that did come back.
        """
        return self.get_bulk_results("tts", run_ids)

    def get_bulk_results(self, kind: str | ResultKind, run_ids: object) -> dict[int, Any]:
        """The results of any number of runs of one kind, in the fewest calls the API allows.

        IDs are validated before any request, de-duplicated (order kept) and sent to the kind's
        bulk endpoint (``POST /tts-results``, ``/dubbing-results``...) in chunks of 2 to 5; a lone
        ID goes to the single-run endpoint. A chunk rejected because of its IDs is retried one ID
        at a time, so good runs still come back and each bad one is named with the API's reason.

        Each result is read as the API documents it (see :mod:`airflow_provider_camb.hooks.result_values`):
        a URL for ``tts`` and ``text_to_sound``; the object with its URLs for ``dubbing`` (or a
        map language -> that), ``audio_separation`` and ``stories``; the list of texts for
        ``translation``; the transcript list for ``transcription`` (either documented shape).

        :param kind: the runs' kind.
        :param run_ids: one run ID or an iterable of them (ints or numeric strings).
        :return: ``run_id -> result`` in input order.
        :raises InvalidRunIdsError: for invalid input, before any request.
        :raises CambRunsMissingError: if any run came back without a result; it carries the
            results that did come back (as ``urls``) and each missing run's reason.
        """
        return self.fetch_bulk_results(kind, run_ids).raise_if_missing()

    def fetch_bulk_results(self, kind: str | ResultKind, run_ids: object) -> BulkResults:
        """What :meth:`get_bulk_results` fetches, as a value: the results and the missing runs.

        For callers that deliver what arrived and report the rest (the operators), so a partial
        answer is not an exception to unpack.

        :param kind: the runs' kind.
        :param run_ids: one run ID or an iterable of them (ints or numeric strings).
        :raises InvalidRunIdsError: for invalid input, before any request.
        """
        resolved = _kind(kind)
        ids = normalise_run_ids(run_ids)
        results: dict[int, Any] = {}
        missing: dict[int, str | None] = {}
        endpoint = resolved.bulk_endpoint()
        for chunk in plan_chunks(ids):
            if len(chunk) == 1:
                self._fetch_one_by_one(resolved, chunk, results, missing)
                continue
            try:
                response = self._request("POST", resolved.bulk_path, json={"run_ids": chunk})
            except CambAPIError as err:
                if err.status_code not in ID_REJECTION_STATUS_CODES:
                    raise
                self.log.warning(
                    "Camb.ai rejected run IDs %s together (HTTP %s: %s); asking for each on its own.",
                    chunk,
                    err.status_code,
                    err.message,
                )
                self._fetch_one_by_one(resolved, chunk, results, missing)
                continue
            found, not_found = _parse_bulk_answer(resolved, _json(response, endpoint), chunk)
            results.update(found)
            missing.update(not_found)
            self.log.info(
                "Camb.ai run IDs %s: %d of %d %s returned.",
                chunk,
                len(found),
                len(chunk),
                "audio URLs" if resolved.url_fields == ("output_url",) else f"{resolved.name} results",
            )
        return BulkResults(
            found={run_id: results[run_id] for run_id in ids if run_id in results},
            missing={run_id: missing[run_id] for run_id in ids if run_id in missing},
            what="audio URL" if resolved is TTS else f"{resolved.name} result",
        )

    def _fetch_one_by_one(
        self, kind: ResultKind, run_ids: list[int], results: dict[int, Any], missing: dict[int, str | None]
    ) -> None:
        for run_id in run_ids:
            result, reason = self._single_result(kind, run_id)
            if result is None:
                missing[run_id] = reason
            else:
                results[run_id] = result
            self.log.info(
                "Camb.ai run ID %s: %s.",
                run_id,
                "result returned" if result is not None else f"none ({reason})",
            )

    @contextmanager
    def stream_tts(
        self,
        request: TTSStreamRequest,
        text: str,
        output_format: str | None = None,
        *,
        max_retries: int | None = None,
    ) -> Iterator[TTSStream]:
        """Synthesise ``text`` with ``POST /tts-stream``: yields the audio as it arrives.

        The status is checked before any audio is read: errors (422 with the API's reasons,
        401/403, ...) raise :class:`~airflow_provider_camb.exceptions.CambAPIError` and rate
        limits, 5xx and connection errors are retried first, honouring ``Retry-After``. A body
        that breaks off raises :class:`~airflow_provider_camb.exceptions.CambStreamBrokenError`
        from :meth:`TTSStream.iter_bytes`; :meth:`synthesize_to_file` asks again in that case.

        :param request: voice, language, model, format and settings (validated already).
        :param text: 3 to 3,000 characters.
        :param output_format: the format to ask for, if not ``request.output_format``.
        :param max_retries: retries of the request instead of the connection's.
        """
        payload = request.payload(text, output_format)
        response = self._request(
            "POST",
            "/tts-stream",
            json=payload,
            stream=True,
            headers={"Accept": "audio/*, application/json"},
            max_retries=max_retries,
        )
        try:
            yield TTSStream(response)
        finally:
            response.close()

    def synthesize_to_file(
        self, request: TTSStreamRequest, text: str, path: str, output_format: str | None = None
    ) -> TTSStreamInfo:
        """Stream the speech of ``text`` into the local file ``path``, whole.

        A stream that breaks off mid-body is asked for again (up to the connection's
        ``max_retries``, with the hook's backoff); only this text is synthesised again.

        :param request: voice, language, model, format and settings (validated already).
        :param text: 3 to 3,000 characters.
        :param path: the local file to write (replaced on every attempt).
        :param output_format: the format to ask for, if not ``request.output_format``.
        :raises CambAPIError: the API refused, or kept failing.
        """
        retries = self.settings.max_retries
        # One budget for every way an attempt can fail (429, 5xx, no answer, a body cut short),
        # so the attempts never multiply: the request itself is sent without retries of its own.
        retrying = tenacity.Retrying(
            **self._retry_policy(
                "POST /tts-stream", retries, retry=tenacity.retry_if_exception(_worth_another_stream)
            ),
            sleep=type(self).retry_sleep,
        )
        for attempt in retrying:
            with (
                attempt,
                # Opened before the request: a file that cannot be written must not cost a synthesis.
                open(path, "wb") as file,
                self.stream_tts(request, text, output_format, max_retries=0) as stream,
            ):
                for chunk in stream.iter_bytes():
                    file.write(chunk)
                return TTSStreamInfo(stream.content_type, stream.credits, stream.bytes_read)
        raise AssertionError("unreachable: tenacity either returned or raised")  # pragma: no cover

    def create_tts_task(self, payload: dict[str, Any]) -> str:
        """Create one (billed) TTS task with the legacy ``POST /tts``; return its ``task_id``.

        The TTS case of :meth:`create_task`; see there for when it is sent again.

        :param payload: the JSON body: ``text``, ``voice_id``, ``language`` (an int language ID)
            and optionally ``gender``, ``age``, ``folder_id``, ``project_name``,
            ``project_description`` (validated already).
        """
        return self.create_task(payload, "tts")

    def create_task(self, payload: dict[str, Any], kind: str | ResultKind = "tts") -> str:
        """Create one (billed) task of any kind (``POST /tts``, ``/dub``, ``/translate``...).

        Sent again only when the API certainly did not take it: the connection could not be
        opened (refused, DNS, connect timeout) or the answer was 429 (after its ``Retry-After``),
        up to the connection's ``max_retries``. Once the body may have reached the server, a lost
        answer (read timeout, a reset), a 408, a 5xx or a 2xx without a ``task_id`` raises
        :class:`~airflow_provider_camb.exceptions.CambTaskMayExistError` instead of a retry that
        could create the task twice.

        :param payload: the JSON body as the kind's create endpoint documents it (for TTS:
            ``text``, ``voice_id``, ``language`` as an int language ID...).
        :param kind: the task's kind.
        :raises CambTaskMayExistError: the task may exist; it was not asked for again.
        :raises CambAPIError: the API refused (4xx, ``CambAuthError`` for 401/403), kept
            answering 429, or could not be reached at all: no task was created.
        """
        from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

        from airflow_provider_camb.exceptions import CambTaskMayExistError

        resolved = _kind(kind)
        settings = self.settings
        session = self.get_conn()
        url = f"{settings.base_url}{resolved.create_path}"
        endpoint = f"POST {resolved.create_path}"
        retries = settings.max_retries
        seconds = settings.timeout
        # What the error names: the text of a TTS task, the source of the others.
        text = str(
            payload.get("text")
            or payload.get("video_url")
            or payload.get("prompt")
            or payload.get("texts")
            or ""
        )

        def never_sent(error: BaseException) -> bool:
            # requests' ConnectTimeout, or a ConnectionError whose urllib3 reason is a failure to
            # open the connection (NewConnectionError, NameResolutionError: ConnectTimeoutError
            # subclasses). A reset or a read timeout may come after the server took the body.
            if isinstance(error, requests.exceptions.ConnectTimeout):
                return True
            if not isinstance(error, requests.ConnectionError) or isinstance(
                error, (requests.exceptions.SSLError, requests.exceptions.ProxyError)
            ):
                return False
            reason = error.args[0] if error.args else None
            if isinstance(reason, MaxRetryError):
                reason = reason.reason
            return isinstance(reason, ConnectTimeoutError)

        retrying = tenacity.Retrying(
            **self._retry_policy(
                endpoint,
                retries,
                retry=tenacity.retry_if_exception(never_sent)
                | tenacity.retry_if_result(lambda response: response.status_code == 429),
            ),
            sleep=type(self).retry_sleep,
        )
        try:
            response: requests.Response = retrying(
                session.request,
                "POST",
                url,
                json=payload,
                timeout=(min(10.0, seconds), seconds),
                allow_redirects=False,
            )
        except requests.RequestException as err:
            if never_sent(err):
                raise _unreachable(err, url, retries, endpoint) from None
            what = (
                f"no answer within {seconds:g} s after the request was sent"
                if isinstance(err, requests.Timeout)
                else "the connection broke after the request was sent"
            )
            raise CambTaskMayExistError(
                f"{what} ({type(err).__name__})", status_code=None, endpoint=endpoint, text=text
            ) from None
        error = _error_of(response, endpoint, settings)
        if error is not None and (response.status_code == 408 or response.status_code >= 500):
            # The server (or a gateway in front of it) had the body: it may have made the task.
            raise CambTaskMayExistError(
                error.message, status_code=response.status_code, endpoint=endpoint, text=text
            )
        if error is not None:
            raise error
        try:
            task_id = response.json().get("task_id")
        except (ValueError, AttributeError):
            task_id = None
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id.strip():
            raise CambTaskMayExistError(
                f"the answer carried no task_id: {_shorten(response.text)}",
                status_code=response.status_code,
                endpoint=endpoint,
                text=text,
            )
        return task_id.strip()

    # -- HTTP -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one API request with retries; return the 2xx response or raise CambAPIError.

        :param timeout: seconds per phase instead of the connection's (the connection Test).
        :param max_retries: retries instead of the connection's.
        :param stream: leave the body unread (the caller reads it, then closes the response).
        :param headers: extra headers for this request.
        """
        settings = self.settings
        session = self.get_conn()
        url = f"{settings.base_url}{path}"
        endpoint = f"{method} {_path_template(path)}"
        retries = settings.max_retries if max_retries is None else max_retries
        seconds = settings.timeout if timeout is None else timeout
        retrying = tenacity.Retrying(
            **self._retry_policy(endpoint, retries, (requests.ConnectionError, requests.Timeout)),
            sleep=type(self).retry_sleep,
        )
        try:
            response: requests.Response = retrying(
                session.request,
                method,
                url,
                params=params,
                json=json,
                timeout=(min(10.0, seconds), seconds),
                # The key must reach the API origin only; a redirect is refused below.
                allow_redirects=False,
                stream=stream,
                headers=headers,
            )
        except requests.Timeout as err:
            raise _no_answer(err, seconds, retries, endpoint) from None
        except requests.RequestException as err:
            raise _unreachable(err, url, retries, endpoint) from None
        error = _error_of(response, endpoint, settings)
        if error is not None:
            response.close()
            raise error
        return response

    async def _arequest(self, method: str, path: str) -> httpx.Response:
        """:meth:`_request` over the loop's shared async client (see ``_async_http``)."""
        settings = await self.aload_connection()
        url = f"{settings.base_url}{path}"
        endpoint = f"{method} {_path_template(path)}"
        retries = settings.max_retries
        client = shared_async_client()
        headers = {"x-api-key": settings.api_key}
        timeout = httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout))
        retrying = tenacity.AsyncRetrying(
            **self._retry_policy(endpoint, retries, (httpx.TransportError,)),
            sleep=type(self).async_retry_sleep,
        )
        try:
            response: httpx.Response = await retrying(
                client.request, method, url, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException as err:
            raise _no_answer(err, settings.timeout, retries, endpoint) from None
        except httpx.HTTPError as err:
            raise _unreachable(err, url, retries, endpoint) from None
        error = _error_of(response, endpoint, settings)
        if error is not None:
            raise error
        return response

    def _retry_policy(
        self,
        endpoint: str,
        retries: int,
        transport_errors: tuple[type[BaseException], ...] = (),
        *,
        retry: tenacity.retry_base | None = None,
    ) -> dict[str, Any]:
        """One retry policy for every call: how many attempts, how long apart, what is logged.

        :param transport_errors: the client's "no answer" exceptions (requests' or httpx's),
            retried with the answers of :data:`RETRYABLE_STATUS_CODES`.
        :param retry: what is retried instead, for calls with a stricter rule (a billed create,
            a streamed body).
        """
        return {
            "stop": tenacity.stop_after_attempt(retries + 1),
            "wait": WaitRetryAfterOrBackoff(),
            "retry": retry
            or (
                tenacity.retry_if_exception_type(transport_errors)
                | tenacity.retry_if_result(lambda response: response.status_code in RETRYABLE_STATUS_CODES)
            ),
            "before_sleep": lambda state: self._before_retry(state, endpoint, retries),
            # Out of attempts: hand back the last response (or raise the last error) as is.
            "retry_error_callback": lambda state: state.outcome.result() if state.outcome else None,
        }

    def _before_retry(self, state: tenacity.RetryCallState, endpoint: str, max_retries: int) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if not outcome.failed and isinstance(outcome.result(), requests.Response):
            # A streamed answer that is being given up on must give its connection back.
            outcome.result().close()
        cause = (
            type(outcome.exception()).__name__ if outcome.failed else f"HTTP {outcome.result().status_code}"
        )
        delay = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "Camb.ai %s: %s; retry %d of %d in %.1f s.",
            endpoint,
            cause,
            state.attempt_number,
            max_retries,
            delay,
        )


# -- helpers (module level: pure, testable) ---------------------------------------------------


def _base_url(host: str | None, port: int | None, schema: str | None) -> str:
    """The API root from the connection's host, plus the port and path a URI-form connection puts apart.

    ``camb://:key@client.camb.ai/apis`` arrives as host ``client.camb.ai`` and schema ``apis``.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"https://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if not path and schema and schema.strip("/"):
        path = "/" + schema.strip("/")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _credits(value: str | None) -> float | None:
    """``X-Credits-Required: 42`` -> 42.0; ``None`` when absent or unreadable."""
    try:
        return float(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def _origin(url: str) -> str:
    """``https://client.camb.ai:443``: scheme, host and port, the unit the API key is bound to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _no_answer(err: BaseException, seconds: float, retries: int, endpoint: str) -> CambAPIError:
    return CambAPIError(
        f"no answer within {seconds:g} s after {retries + 1} attempt(s) ({type(err).__name__})",
        status_code=None,
        endpoint=endpoint,
    )


def _unreachable(err: BaseException, url: str, retries: int, endpoint: str) -> CambAPIError:
    return CambAPIError(
        f"could not reach {redact_url(url)} after {retries + 1} attempt(s) ({type(err).__name__})",
        status_code=None,
        endpoint=endpoint,
    )


def _error_of(response: AnyResponse, endpoint: str, settings: CambConnectionSettings) -> CambAPIError | None:
    """The error an answer means (a redirect, any 4xx/5xx), or ``None`` for a 2xx, for both clients."""
    if 300 <= response.status_code < 400:
        return _redirect_error(response, endpoint, settings.base_url)
    if response.status_code >= 400:
        return _api_error(response, endpoint, settings.api_key)
    return None


def _redirect_error(response: AnyResponse, endpoint: str, base_url: str) -> CambAPIError:
    """A redirect is never followed: the API key would travel with it (see docs/reliability)."""
    location = response.headers.get("Location") or ""
    target = urljoin(str(response.url or base_url), location) if location else ""
    shown = redact_url(target) if target else "no Location"
    hint = ""
    if target and urlsplit(target).scheme == "https" and urlsplit(base_url).scheme == "http":
        hint = " The API Base URL probably needs https://."
    elif target:
        hint = " If the API has moved, set the connection's API Base URL to the new address."
    return CambAPIError(
        f"the API answered with a redirect to {shown}, which is not followed so that the API key "
        f"reaches {redact_url(base_url)} only.{hint}",
        status_code=response.status_code,
        endpoint=endpoint,
    )


def _without_conn_id(message: str, conn_id: str) -> str:
    """Drop ``'<conn id>'`` from a message: the UI tests a copy under a random ID."""
    return message.replace(f" {conn_id!r}", "")


def _timeout_seconds(override: float | None, from_extra: object) -> float:
    value = override if override is not None else from_extra
    if value is None or value == "":
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not seconds > 0:
        raise CambConnectionConfigError(
            f"Camb.ai connection field 'Timeout (seconds)' (extra 'timeout') must be a number > 0, "
            f"got {value!r}"
        )
    return seconds


def _retry_count(override: int | None, from_extra: object) -> int:
    value = override if override is not None else from_extra
    if value is None or value == "":
        return DEFAULT_MAX_RETRIES
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise CambConnectionConfigError(
            f"Camb.ai connection field 'Max retries' (extra 'max_retries') must be a whole number >= 0, "
            f"got {value!r}"
        )
    return int(text)


def _path_template(path: str) -> str:
    """``/tts/abc`` -> ``/tts/{task_id}``: endpoints in errors read like the API docs."""
    for kind in RESULT_KINDS.values():
        for template in (kind.status_path, kind.result_path):
            prefix = template.split("{", 1)[0]
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                return template
    return path


def _kind(kind: str | ResultKind) -> ResultKind:
    return kind if isinstance(kind, ResultKind) else result_kind(kind)


def _checked_task_id(task_id: object) -> str:
    text = str(task_id).strip()
    if not text:
        raise ValueError("A Camb.ai task ID cannot be empty.")
    return text


def _status_path(kind: ResultKind, task_id: str) -> str:
    # Quoted whole, so no character of an ID ("/", "?", "#") can change which URL is asked.
    return kind.status_path.format(task_id=quote(task_id, safe=""))


def _status_from(kind: ResultKind, task_id: str, response: AnyResponse) -> CambTaskStatus:
    try:
        return CambTaskStatus.from_api(task_id, response.json())
    except ValueError as err:
        raise CambAPIError(
            str(err), status_code=response.status_code, endpoint=kind.status_endpoint()
        ) from err


def _json(response: requests.Response, endpoint: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CambAPIError(
            f"expected JSON, got {response.headers.get('Content-Type', 'no content type')}: "
            f"{_shorten(response.text)}",
            status_code=response.status_code,
            endpoint=endpoint,
        ) from None


def _parse_bulk_answer(
    kind: ResultKind, answer: Any, chunk: list[int]
) -> tuple[dict[int, Any], dict[int, str | None]]:
    if not isinstance(answer, dict):
        raise CambAPIError(
            f"expected an object keyed by run ID, got {_shorten(str(answer))}",
            status_code=200,
            endpoint=kind.bulk_endpoint(),
        )
    by_id = {str(key).strip(): value for key, value in answer.items()}
    found: dict[int, Any] = {}
    missing: dict[int, str | None] = {}
    for run_id in chunk:
        if str(run_id) not in by_id:
            missing[run_id] = f"left out of the {kind.bulk_endpoint()} answer"
            continue
        result, reason = read_value(kind, by_id[str(run_id)])
        if result is None:
            missing[run_id] = reason
        else:
            found[run_id] = result
    return found, missing


def _api_error(response: AnyResponse, endpoint: str, api_key: str) -> CambAPIError:
    message = scrub_secret(_error_message(response), api_key)
    if response.status_code in (401, 403):
        return CambAuthError(
            f"the API key was rejected ({message}). "
            f"Check the '{API_KEY_LABEL}' field of the Camb.ai connection.",
            status_code=response.status_code,
            endpoint=endpoint,
        )
    error = CambAPIError(message, status_code=response.status_code, endpoint=endpoint)
    error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error


def _worth_another_stream(error: BaseException) -> bool:
    """Whether a failed ``POST /tts-stream`` attempt may succeed if sent again."""
    if isinstance(error, CambStreamBrokenError):
        return True
    if not isinstance(error, CambAPIError) or isinstance(error, CambAuthError):
        return False
    return error.status_code is None or error.status_code in RETRYABLE_STATUS_CODES


def _error_message(response: AnyResponse) -> str:
    """The server's own words: FastAPI ``detail`` lists rendered as ``loc: msg``, else the text."""
    try:
        body = response.json()
    except ValueError:
        reason = getattr(response, "reason", None) or getattr(response, "reason_phrase", None)
        return _shorten(response.text) or reason or "no message"
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body.get("message")))
        if isinstance(detail, list):
            return "; ".join(_render_validation_item(item) for item in detail) or "validation error"
        if detail is not None:
            return _shorten(str(detail))
    return _shorten(str(body))


def _render_validation_item(item: Any) -> str:
    if not isinstance(item, dict):
        return _shorten(str(item))
    location = ".".join(str(part) for part in item.get("loc", []) if part != "body")
    message = str(item.get("msg", "invalid"))
    return f"{location}: {message}" if location else message


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
