"""The fault schedule: queued failures, redirects, latencies and body cuts, taken one request at
a time.

Thread-safe: the server's threads take faults while a test schedules more.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_provider_camb.testing._http import Response, json_response, phrase
from airflow_provider_camb.testing._routes import check_endpoint

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Statuses a redirect may use: the ones that carry a ``Location`` clients follow.
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class _Counted(Protocol):
    remaining: int


_Item = TypeVar("_Item", bound=_Counted)


def _take(queues: dict[str, deque[_Item]], names: Iterable[str]) -> _Item | None:
    # The head of the first non-empty queue among ``names``, used once more.
    for name in names:
        queue = queues.get(name)
        if queue:
            item = queue[0]
            item.remaining -= 1
            if item.remaining <= 0:
                queue.popleft()
            return item
    return None


@dataclass
class Failure:
    """Answer ``remaining`` more requests with ``status`` (and ``retry_after``, ``body``)."""

    status: int
    remaining: int
    retry_after: float | str | None
    body: Any

    def response(self) -> Response:
        """The answer this failure gives."""
        headers = []
        if self.retry_after is not None:
            value = self.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            headers.append(("Retry-After", str(value)))
        body = self.body
        if body is None:
            text = "Rate limit exceeded" if self.status == 429 else phrase(self.status)
            return json_response(self.status, {"detail": text}, headers)
        if isinstance(body, bytes):
            return Response(self.status, body, content_type="text/plain", headers=headers)
        if isinstance(body, str):
            return Response(
                self.status, body.encode(), content_type="text/plain; charset=utf-8", headers=headers
            )
        return json_response(self.status, body, headers)


@dataclass
class Latency:
    """Delay requests by ``seconds``; ``remaining`` more times, or forever when ``None``."""

    seconds: float
    remaining: int | None


@dataclass
class Redirect:
    """Answer ``remaining`` more requests with ``status`` and a ``Location`` on another host."""

    status: int
    remaining: int


@dataclass
class BodyCut:
    """Cut ``remaining`` more bodies: ``"reset"`` after ``nbytes``, or ``"short"`` by ``nbytes``."""

    mode: str
    nbytes: int
    remaining: int


class FaultSchedule:
    """Faults scheduled per endpoint name (or ``"*"`` for any), consumed in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[Failure]] = {}
        self._redirects: dict[str, deque[Redirect]] = {}
        self._latencies: dict[str, list[Latency]] = {}
        self._cuts: dict[str, deque[BodyCut]] = {}

    def fail_next(
        self, endpoint: str, count: int, status: int, retry_after: float | str | None, body: Any
    ) -> None:
        """Queue a failure (see :meth:`CambEmulator.fail_next`).

        :param endpoint: an endpoint name, or ``"*"``.
        :param count: how many requests fail.
        :param status: the status code to answer.
        :param retry_after: value of a ``Retry-After`` header, if any.
        :param body: the answer's body; ``None`` for a default ``detail``.
        """
        check_endpoint(endpoint)
        with self._lock:
            self._failures.setdefault(endpoint, deque()).append(Failure(status, count, retry_after, body))

    def redirect_next(self, endpoint: str, count: int, status: int) -> None:
        """Queue a redirect (see :meth:`CambEmulator.redirect_next`).

        :param endpoint: an API endpoint name, or ``"*"`` for any API endpoint.
        :param count: how many requests are redirected, at least 1.
        :param status: one of :data:`REDIRECT_STATUSES`.
        """
        check_endpoint(endpoint)
        if endpoint == "download":
            raise ValueError("redirects apply to API endpoints, not to signed-URL downloads")
        if status not in REDIRECT_STATUSES:
            raise ValueError(f"status must be one of {REDIRECT_STATUSES}, not {status!r}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count!r}")
        with self._lock:
            self._redirects.setdefault(endpoint, deque()).append(Redirect(status, count))

    def add_latency(self, endpoint: str, seconds: float, count: int | None) -> None:
        """Add a delay (see :meth:`CambEmulator.add_latency`).

        :param endpoint: an endpoint name, or ``"*"``.
        :param seconds: the delay.
        :param count: how many requests to delay; ``None`` for all.
        """
        check_endpoint(endpoint)
        with self._lock:
            self._latencies.setdefault(endpoint, []).append(Latency(seconds, count))

    def cut_bodies(self, endpoint: str, mode: str, nbytes: int, count: int) -> None:
        """Queue a body cut for the successful answers of one endpoint.

        :param endpoint: an endpoint name whose answers stream a body (``download``, ``tts_stream``).
        :param mode: ``"reset"`` (RST after ``nbytes``) or ``"short"`` (``nbytes`` fewer, then close).
        :param nbytes: see ``mode``.
        :param count: how many answers are cut.
        """
        check_endpoint(endpoint)
        with self._lock:
            self._cuts.setdefault(endpoint, deque()).append(BodyCut(mode, nbytes, count))

    def clear(self) -> None:
        """Drop every pending failure, redirect, latency and body cut."""
        with self._lock:
            self._failures.clear()
            self._redirects.clear()
            self._latencies.clear()
            self._cuts.clear()

    def take_failure(self, endpoint: str) -> Failure | None:
        """The failure for this request to ``endpoint``, if one is due (its own before ``"*"``).

        :param endpoint: the endpoint requested.
        """
        with self._lock:
            return _take(self._failures, (endpoint, "*"))

    def take_redirect(self, endpoint: str) -> Redirect | None:
        """The redirect for this request to ``endpoint``, if one is due (its own before ``"*"``).

        :param endpoint: the API endpoint requested.
        """
        with self._lock:
            return _take(self._redirects, (endpoint, "*"))

    def take_latency(self, endpoint: str) -> float:
        """Seconds to delay this request to ``endpoint``: every matching latency adds up.

        :param endpoint: the endpoint requested.
        """
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

    def take_cut(self, endpoint: str) -> BodyCut | None:
        """The cut due for this answer of ``endpoint``, if any.

        :param endpoint: the endpoint whose body is about to be sent.
        """
        with self._lock:
            return _take(self._cuts, (endpoint,))
