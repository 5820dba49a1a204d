"""Streaming downloads from signed storage URLs, with retries and URL refresh.

The session here is *not* the hook's: it never carries the Camb.ai API key, so the storage
host (or anything a signed URL redirects to) cannot see it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from airflow_provider_camb.hooks._sessions import USER_AGENT, EnvironmentSession
from airflow_provider_camb.hooks.retry_policy import backoff_seconds, parse_retry_after
from airflow_provider_camb.utils.redaction import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_camb.storage.sinks import AtomicSink

T = TypeVar("T")

#: Bytes per read from the socket and per write to the sink: large enough that per-chunk Python
#: overhead vanishes next to the copy, small enough that memory stays flat (one chunk per thread).
CHUNK_SIZE = 1024 * 1024

TRANSIENT_STATUS_CODES = frozenset({408, 425, 429, *range(500, 600)})
# What an object store answers for an expired, tampered or revoked signed URL: ask for a new one.
REFRESH_STATUS_CODES = frozenset({400, 401, 403, 404, 410})

# Seconds of validity below which a URL counts as expired already (clock skew, slow start).
EXPIRY_MARGIN_SECONDS = 5.0

_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>)]*")


class DownloadError(Exception):
    """A download did not produce a whole file. The message never contains a signed query."""


class TransientDownloadError(DownloadError):
    """Worth retrying as is: connection reset, timeout, short body, 408/429/5xx.

    :param retry_after: seconds the server asked us to wait, if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UrlRejectedError(DownloadError):
    """The storage host refused the URL itself (expired, bad signature...): get a fresh one."""


class PermanentDownloadError(DownloadError):
    """No retry can help (a status like 416, a bad redirect, out of refreshes)."""


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try one file.

    :param max_attempts: tries per URL on transient errors (the first one included).
    :param max_refreshes: fresh URLs fetched through the API per file, on rejection or expiry.
    :param backoff_initial: first wait in seconds; doubles on every retry, with jitter.
    :param backoff_max: the largest wait in seconds.
    """

    max_attempts: int = 5
    max_refreshes: int = 3
    backoff_initial: float = 1.0
    backoff_max: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        return backoff_seconds(attempt, retry_after, initial=self.backoff_initial, maximum=self.backoff_max)


@dataclass(frozen=True)
class ResponseInfo:
    """What the storage host said about a file: size (``None`` if unknown) and content type."""

    size: int | None
    content_type: str | None


def describe_error(err: BaseException) -> str:
    """``ConnectionError: ... url: /x.flac?…``: an exception for a log line, signed queries cut."""
    text = _QUERY_IN_TEXT.sub("?…", str(err))
    if len(text) > 300:
        text = text[:299] + "…"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def url_expires_at(url: str) -> float | None:
    """When a signed URL stops working (epoch seconds), if its query says so.

    Understands AWS SigV4 (``X-Amz-Date`` + ``X-Amz-Expires``), GCS V4 (``X-Goog-*``), the
    older ``Expires=<epoch>`` form (S3 SigV2, GCS V2, CloudFront) and ``expires=<epoch>``.
    """
    try:
        query = {key.lower(): value for key, value in parse_qsl(urlsplit(url).query)}
    except ValueError:
        return None
    for prefix in ("x-amz-", "x-goog-"):
        date, lifetime = query.get(prefix + "date"), query.get(prefix + "expires")
        if date and lifetime:
            try:
                start = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                return start.timestamp() + float(lifetime)
            except ValueError:
                return None
    value = query.get("expires")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def is_expired(url: str, now: float | None = None) -> bool:
    expires = url_expires_at(url)
    current = time.time() if now is None else now
    return expires is not None and expires - EXPIRY_MARGIN_SECONDS <= current


class Downloader:
    """Streams signed URLs into sinks over one pooled, key-less HTTP session.

    :param pool_size: connections kept per host: at least the number of threads sharing it.
    :param chunk_size: bytes per read and write.
    :param timeout: ``(connect, read)`` seconds; the read timeout is per socket read, not per file.
    """

    def __init__(
        self,
        *,
        pool_size: int,
        chunk_size: int = CHUNK_SIZE,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        self.chunk_size = chunk_size
        self.timeout = timeout
        session = EnvironmentSession()
        # Retries are ours (they must restart the sink too); urllib3 must not retry underneath.
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Identity encoding: the bytes on the wire are the file, and Content-Length counts them.
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        self.session = session

    def close(self) -> None:
        self.session.close()

    def _send(
        self, url: str, *, stream: bool = False, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """One GET; a network failure becomes a transient error, a malformed one permanent.

        Only GET ever goes to a signed URL: S3 SigV4 and GCS V4 signatures cover the method, so a
        HEAD with a URL signed for GET is refused (403).
        """
        try:
            return self.session.get(
                url, stream=stream, timeout=self.timeout, allow_redirects=True, headers=headers
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise TransientDownloadError(describe_error(err)) from None
        except requests.RequestException as err:
            raise PermanentDownloadError(describe_error(err)) from None

    def probe(self, url: str) -> ResponseInfo:
        """Size and type of the file behind ``url``, from a GET of its first byte.

        A ranged GET rather than the headers of the real GET: on a re-run over finished files
        each check is one tiny request on a kept-alive connection, where abandoning a real GET
        would drop the connection and leave the storage host sending bytes nobody reads. A host
        that ignores ``Range`` answers 200: its ``Content-Length`` is then the size, and the body
        is not read (the connection is dropped).
        """
        response = self._send(url, stream=True, headers={"Range": "bytes=0-0"})
        with response:
            if response.status_code == 206:
                _check_final_scheme(response)
                size = _total_from_content_range(response.headers.get("Content-Range"))
                # Read the one byte, so the connection goes back to the pool for the next file.
                _ = response.content
                return ResponseInfo(size, response.headers.get("Content-Type"))
            _check_status(response, "GET")
            return _info(response)

    def download(
        self,
        url: str,
        open_sink: Callable[[ResponseInfo], AtomicSink],
        on_bytes: Callable[[int], object] = lambda _: None,
    ) -> ResponseInfo:
        """Stream ``url`` into the sink ``open_sink`` returns; commit only a whole body.

        :return: the response's info, ``size`` being the bytes actually written.
        :raises TransientDownloadError: on a broken or short body (the sink was aborted).
        """
        response = self._send(url, stream=True)
        with response:
            _check_status(response, "GET")
            info = _info(response)
            sink = open_sink(info)
            try:
                written = self._copy(response, sink, on_bytes)
                if info.size is not None and written != info.size:
                    raise TransientDownloadError(
                        f"short body: {written} of {info.size} bytes (Content-Length)"
                    )
                sink.commit()
            except BaseException:
                sink.abort()
                raise
        return ResponseInfo(written, info.content_type)

    def _copy(self, response: requests.Response, sink: AtomicSink, on_bytes: Callable[[int], object]) -> int:
        raw = response.raw
        read = raw.read
        chunk_size = self.chunk_size
        written = 0
        try:
            while True:
                # urllib3 raises IncompleteRead when the body ends before Content-Length.
                chunk = read(chunk_size, decode_content=True)
                if not chunk:
                    break
                sink.write(chunk)
                written += len(chunk)
                on_bytes(len(chunk))
        except (Urllib3HTTPError, requests.RequestException, ConnectionError, TimeoutError) as err:
            raise TransientDownloadError(
                f"body broke off after {written} bytes: {describe_error(err)}"
            ) from None
        return written


def _info(response: requests.Response) -> ResponseInfo:
    length = response.headers.get("Content-Length")
    size: int | None
    try:
        size = int(length) if length is not None else None
    except ValueError:
        size = None
    if size is not None and size < 0:
        size = None
    return ResponseInfo(size, response.headers.get("Content-Type"))


def _total_from_content_range(value: str | None) -> int | None:
    """``bytes 0-0/12345`` -> 12345; ``None`` for ``*`` or anything unreadable."""
    match = re.fullmatch(r"\s*bytes\s+\d+-\d+/(\d+)\s*", value or "")
    return int(match.group(1)) if match else None


def _check_final_scheme(response: requests.Response) -> None:
    final_scheme = urlsplit(response.url).scheme.lower()
    if final_scheme not in ("http", "https"):
        raise PermanentDownloadError(f"redirected to a {final_scheme} URL")


def _check_status(response: requests.Response, method: str) -> None:
    status = response.status_code
    if status == 200:
        _check_final_scheme(response)
        return
    where = f"{method} {redact_url(response.url)}"
    if status in TRANSIENT_STATUS_CODES:
        raise TransientDownloadError(
            f"{where} answered HTTP {status}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in REFRESH_STATUS_CODES:
        raise UrlRejectedError(f"{where} answered HTTP {status}{_s3_code(response)}")
    raise PermanentDownloadError(f"{where} answered HTTP {status}")


def _s3_code(response: requests.Response) -> str:
    """`` (AccessDenied: Request has expired)`` from an S3-style XML error body, if short."""
    try:
        text = response.raw.read(4096, decode_content=True).decode("utf-8", "replace")
    except Exception:
        return ""
    code = re.search(r"<Code>([^<]{1,64})</Code>", text)
    message = re.search(r"<Message>([^<]{1,200})</Message>", text)
    if not code:
        return ""
    return f" ({code.group(1)}: {message.group(1)})" if message else f" ({code.group(1)})"


class TransferCancelledError(Exception):
    """The task is being stopped: abandon the file (its sink is aborted, nothing is committed)."""


class Recovery:
    """Runs one file's transfer with retries on transient errors and URL refreshes on rejection.

    When to retry and how long to wait are the hook's policy (``retry_policy.backoff_seconds``,
    ``parse_retry_after``); only the loop is its own, not a second tenacity ``Retrying``, because
    it keeps two budgets where tenacity keeps one: transient failures (the same URL again) and
    refused URLs (a new URL from the API, which must not use up a retry), and its wait is the
    task's stop event, so ``on_kill`` ends a long ``Retry-After`` at once.

    :param settings: the budgets.
    :param log: a logger (``warning(msg, *args)``).
    :param stop: set when the task is being stopped; a backoff wait ends at once when it is.
    """

    #: How to wait between retries: ``wait(stop, seconds)`` returns True if stopped meanwhile.
    #: Tests replace it to stay fast.
    wait: ClassVar[Callable[[threading.Event, float], bool]] = threading.Event.wait

    def __init__(self, settings: RetrySettings, log: Any, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.log = log
        self.stop = stop or threading.Event()

    def run(
        self,
        label: str,
        url: str,
        action: Callable[[str], T],
        refresh: Callable[[], str] | None,
    ) -> tuple[T, str]:
        """``(action(url), url)`` with the URL that finally worked.

        :param label: names the file in log lines (e.g. ``"run 1001"``).
        :param refresh: returns a fresh URL (through the API), or ``None`` if there is no way.
        :raises TransientDownloadError: out of attempts.
        :raises PermanentDownloadError: no retry can help, or out of refreshes.
        """
        settings = self.settings
        attempt = 0
        refreshes = 0
        log = self.log
        while True:
            if refresh is not None and is_expired(url) and refreshes < settings.max_refreshes:
                log.info("%s: signed URL %s has expired; asking for a fresh one.", label, redact_url(url))
                url = refresh()
                refreshes += 1
            try:
                return action(url), url
            except UrlRejectedError as err:
                if refresh is None or refreshes >= settings.max_refreshes:
                    why = "no way to refresh the URL" if refresh is None else f"refused {refreshes + 1} URLs"
                    raise PermanentDownloadError(f"{err}; {why}") from None
                log.warning("%s: %s; asking Camb.ai for a fresh URL.", label, err)
                url = refresh()
                refreshes += 1
            except TransientDownloadError as err:
                attempt += 1
                if attempt >= settings.max_attempts:
                    raise TransientDownloadError(f"{err} (gave up after {attempt} attempts)") from None
                delay = settings.delay(attempt, err.retry_after)
                log.warning(
                    "%s: %s; retry %d of %d in %.1f s.", label, err, attempt, settings.max_attempts - 1, delay
                )
                if type(self).wait(self.stop, delay):
                    raise TransferCancelledError from None
