"""Rate-limited progress lines for the task log, shared by the download threads."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: At most one progress line this often (seconds): a log line per chunk would drown the log.
DEFAULT_INTERVAL = 5.0


class ProgressReporter:
    """Counts bytes and files from many threads; logs ``files done/total, bytes, MB/s``.

    :param total_files: files to transfer.
    :param log: a ``logging``-style ``info(msg, *args)`` callable.
    :param interval: minimum seconds between two progress lines.
    :param clock: monotonic clock (tests pass a fake).
    """

    def __init__(
        self,
        total_files: int,
        log: Callable[..., object],
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_files = total_files
        self._log = log
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_logged = self._started
        self.bytes_done = 0
        self.files_done = 0
        self.files_skipped = 0

    def add_bytes(self, count: int) -> None:
        """Count body bytes written (called per chunk, so it must stay cheap)."""
        with self._lock:
            self.bytes_done += count
        self._maybe_log()

    def file_done(self, *, skipped: bool = False) -> None:
        """Count one file finished (or skipped because it was already there)."""
        with self._lock:
            self.files_done += 1
            if skipped:
                self.files_skipped += 1
        self._maybe_log()

    def _maybe_log(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last_logged < self._interval:
                return
            self._last_logged = now
            line = self._line(now)
        self._log("Progress: %s", line)

    def summary(self) -> str:
        """The final line: everything counted so far."""
        with self._lock:
            return self._line(self._clock())

    def _line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self.bytes_done / elapsed / 1e6
        skipped = f" ({self.files_skipped} already there)" if self.files_skipped else ""
        return (
            f"{self.files_done}/{self.total_files} files{skipped}, "
            f"{self.bytes_done / 1e6:.1f} MB in {elapsed:.1f} s, {rate:.1f} MB/s"
        )
