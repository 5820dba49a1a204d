"""Typed errors raised by the Camb.ai provider.

Every error carries the facts a DAG author needs to act on it (status code, endpoint, run IDs,
task status) as attributes, and a message that is readable on its own in a task log.
None of them ever holds the API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


class CambError(Exception):
    """Base class of every error raised by this provider."""


class CambConnectionConfigError(CambError):
    """The ``camb`` connection is unusable as configured (no API key, a bad extra field...)."""


class CambAPIError(CambError):
    """The Camb.ai API answered with an error, or could not be reached at all.

    :param message: the server's message, rendered for people (already free of secrets).
    :param status_code: the HTTP status, or ``None`` when no answer arrived (connection error, timeout).
    :param endpoint: the request as ``"<METHOD> <path>"``, e.g. ``"POST /tts-results"``.
    """

    #: Seconds the server asked to wait before trying again (its ``Retry-After``), if it said.
    retry_after: float | None = None

    def __init__(self, message: str, *, status_code: int | None, endpoint: str) -> None:
        self.message = message
        self.status_code = status_code
        self.endpoint = endpoint
        where = f"{endpoint} failed" if status_code is None else f"{endpoint} returned HTTP {status_code}"
        super().__init__(f"Camb.ai {where}: {message}")

    def __reduce__(self) -> tuple[object, tuple[type[CambAPIError], str, int | None, str]]:
        # Keyword-only arguments break default pickling, which errors need to cross processes.
        return (_rebuild_api_error, (type(self), self.message, self.status_code, self.endpoint))


class CambAuthError(CambAPIError):
    """Camb.ai rejected the API key (HTTP 401 or 403). Retrying cannot help."""


class CambStreamBrokenError(CambAPIError):
    """A streamed answer (``POST /tts-stream``) broke off before its end; asking again may work."""


def _rebuild_api_error(
    cls: type[CambAPIError], message: str, status_code: int | None, endpoint: str
) -> CambAPIError:
    return cls(message, status_code=status_code, endpoint=endpoint)


class CambRunsMissingError(CambError):
    """Some requested run IDs came back without an audio URL (or, for other kinds, a result).

    Nothing is dropped silently: the URLs (results) that did arrive travel with the error, so a
    caller can still deliver them.

    :param urls: ``run_id -> URL`` (or result) for every run that was delivered, in request order.
    :param missing: ``run_id -> reason`` for every run that was not (reason ``None`` when the API
        gave none).
    :param what: what a run should have come back with, for the message.
    """

    def __init__(
        self, urls: Mapping[int, Any], missing: Mapping[int, str | None], what: str = "audio URL"
    ) -> None:
        self.urls = dict(urls)
        self.missing = dict(missing)
        self.what = what
        super().__init__(
            f"Camb.ai returned no {what} for {len(self.missing)} of "
            f"{len(self.urls) + len(self.missing)} run IDs: {describe_missing(self.missing)}"
        )

    def __reduce__(self) -> tuple[type, tuple[dict[int, Any], dict[int, str | None], str]]:
        return (type(self), (self.urls, self.missing, self.what))


def describe_missing(missing: Mapping[int, str | None]) -> str:
    """Render ``run_id -> reason`` as ``"7 (reason); 9 (no reason given)"`` for error messages."""
    return "; ".join(f"{run_id} ({reason or 'no reason given'})" for run_id, reason in missing.items())


class CambTaskMayExistError(CambAPIError):
    """``POST /tts`` may have created a (billed) TTS task, but no task ID came back.

    Raised when the request was sent and then the answer was lost or was a server error: a read
    timeout, a connection reset after sending, a 5xx, a 2xx without a ``task_id``. The request is
    deliberately not sent again, so the same text is never created (and billed) twice.

    :param message: what happened, readable on its own.
    :param status_code: the HTTP status, or ``None`` when no answer arrived.
    :param endpoint: ``"POST /tts"``.
    :param text: the text that was sent, shown shortened in the message.
    """

    def __init__(
        self, message: str, *, status_code: int | None, endpoint: str, text: str | None = None
    ) -> None:
        self.text = text
        self.reason = message
        if text is not None:
            flat = " ".join(text.split())
            shown = flat if len(flat) <= 40 else flat[:39] + "…"
            message = (
                f"{message}. The TTS task for text {shown!r} MAY exist (and be billed); the request "
                f"was not sent again so that the text is not created twice"
            )
        super().__init__(message, status_code=status_code, endpoint=endpoint)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:  # type: ignore[override]
        return (
            _rebuild_may_exist_error,
            (type(self), self.reason, self.status_code, self.endpoint, self.text),
        )


def _rebuild_may_exist_error(
    cls: type[CambTaskMayExistError], message: str, status_code: int | None, endpoint: str, text: str | None
) -> CambTaskMayExistError:
    return cls(message, status_code=status_code, endpoint=endpoint, text=text)
