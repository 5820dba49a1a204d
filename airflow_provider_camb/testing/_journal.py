"""The request journal: what the emulator saw, never the API key."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JournalEntry:
    """One request as the emulator saw it.

    :param method: HTTP method.
    :param path: the full request path without the query string, e.g. ``/apis/tts-results``
        or ``/files/tts/1001.flac``.
    :param endpoint: endpoint name (see :data:`ENDPOINTS`), or ``"unknown"``.
    :param query: query parameters (last value wins for repeated names).
    :param json: the parsed JSON body, or ``None`` when there was none or it did not parse; for a
        multipart form, its fields, each upload as ``{filename, content_type, size}``.
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


class Journal:
    """A thread-safe, append-only list of :class:`JournalEntry` (until cleared)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []

    def append(self, entry: JournalEntry) -> None:
        """Record one request.

        :param entry: the request.
        """
        with self._lock:
            self._entries.append(entry)

    def entries(self, endpoint: str | None = None) -> list[JournalEntry]:
        """A copy of the entries, oldest first.

        :param endpoint: keep only this endpoint's entries; ``None`` for all.
        """
        with self._lock:
            if endpoint is None:
                return list(self._entries)
            return [entry for entry in self._entries if entry.endpoint == endpoint]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
