"""The fault schedule: queued failures, latencies and download cuts, taken one request at a time.

Thread-safe: the server's threads take faults while a test schedules more.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from airflow_provider_camb.testing._http import Response, json_response, phrase
from airflow_provider_camb.testing._routes import check_endpoint


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
class DownloadCut:
    """Cut ``remaining`` more downloads: ``"reset"`` after ``nbytes``, or ``"short"`` by ``nbytes``."""

    mode: str
    nbytes: int
    remaining: int


class FaultSchedule:
    """Faults scheduled per endpoint name (or ``"*"`` for any), consumed in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[Failure]] = {}
        self._latencies: dict[str, list[Latency]] = {}
        self._download_cuts: deque[DownloadCut] = deque()

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

    def add_latency(self, endpoint: str, seconds: float, count: int | None) -> None:
        """Add a delay (see :meth:`CambEmulator.add_latency`).

        :param endpoint: an endpoint name, or ``"*"``.
        :param seconds: the delay.
        :param count: how many requests to delay; ``None`` for all.
        """
        check_endpoint(endpoint)
        with self._lock:
            self._latencies.setdefault(endpoint, []).append(Latency(seconds, count))

    def cut_downloads(self, mode: str, nbytes: int, count: int) -> None:
        """Queue a download cut.

        :param mode: ``"reset"`` (RST after ``nbytes``) or ``"short"`` (``nbytes`` fewer, then close).
        :param nbytes: see ``mode``.
        :param count: how many downloads are cut.
        """
        with self._lock:
            self._download_cuts.append(DownloadCut(mode, nbytes, count))

    def clear(self) -> None:
        """Drop every pending failure, latency and download cut."""
        with self._lock:
            self._failures.clear()
            self._latencies.clear()
            self._download_cuts.clear()

    def take_failure(self, endpoint: str) -> Failure | None:
        """The failure for this request to ``endpoint``, if one is due (its own before ``"*"``).

        :param endpoint: the endpoint requested.
        """
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

    def take_download_cut(self) -> tuple[str, int] | None:
        """``(mode, nbytes)`` of the cut due for this download, if any."""
        with self._lock:
            if not self._download_cuts:
                return None
            cut = self._download_cuts[0]
            cut.remaining -= 1
            if cut.remaining <= 0:
                self._download_cuts.popleft()
            return cut.mode, cut.nbytes
