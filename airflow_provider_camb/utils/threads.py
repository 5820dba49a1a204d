"""A worker pool that stops cleanly when the task is stopped or fails."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterator


@contextlib.contextmanager
def stoppable_pool(
    max_workers: int, thread_name_prefix: str, stop: threading.Event | None
) -> Iterator[ThreadPoolExecutor]:
    """A thread pool, shut down (waiting for its threads) when the block ends.

    When the block raises anything (the task is killed or times out, or an error no retry fixes
    ends it), ``stop`` is set first and the work not started yet is cancelled: only what is in
    flight finishes, and it sees ``stop`` to abandon its file or stage its segment.

    :param max_workers: threads in the pool.
    :param thread_name_prefix: names the threads in logs and dumps.
    :param stop: the task's stop event, watched by the workers (``None``: nothing to tell them).
    """
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
    try:
        yield pool
    except BaseException:
        if stop is not None:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
