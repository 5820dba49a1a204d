"""When and how long to wait before retrying a Camb.ai API call. Pure: no Airflow, no I/O."""

from __future__ import annotations

import email.utils
import random
import time
from typing import TYPE_CHECKING

from tenacity.wait import wait_base

if TYPE_CHECKING:
    import requests
    from tenacity import RetryCallState

# 408 and 429 are "come back later"; every 5xx may be a passing fault of the service.
RETRYABLE_STATUS_CODES = frozenset({408, 429, *range(500, 600)})

# A server may ask for an hour; a task would rather fail visibly than sleep that long.
MAX_RETRY_AFTER_SECONDS = 120.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta-seconds or an HTTP date).

    Returns ``None`` when the header is absent or unreadable, never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(
    attempt: int,
    retry_after: float | None = None,
    *,
    initial: float = 1.0,
    maximum: float = 30.0,
    retry_after_cap: float = MAX_RETRY_AFTER_SECONDS,
) -> float:
    """How long to wait before retry number ``attempt`` (1 for the first retry).

    The server's ``Retry-After`` when it gave one (capped); otherwise ``initial`` doubling per
    retry up to ``maximum``, plus up to ``initial`` of random jitter so that many workers hit by
    the same outage do not come back in lockstep.
    """
    if retry_after is not None:
        return min(retry_after, retry_after_cap)
    return min(maximum, initial * 2 ** (attempt - 1)) + random.uniform(0, initial)


class WaitRetryAfterOrBackoff(wait_base):
    """Wait as long as the server's ``Retry-After`` says (capped), else exponential backoff with jitter.

    :param initial: the first backoff in seconds.
    :param maximum: the largest backoff in seconds.
    :param retry_after_cap: the largest ``Retry-After`` honoured, in seconds.
    """

    def __init__(
        self, initial: float = 1.0, maximum: float = 30.0, retry_after_cap: float = MAX_RETRY_AFTER_SECONDS
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._retry_after_cap = retry_after_cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        retry_after = None
        if outcome is not None and not outcome.failed:
            response: requests.Response = outcome.result()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        elif outcome is not None:
            # An error that carries the server's wish (CambAPIError.retry_after).
            retry_after = getattr(outcome.exception(), "retry_after", None)
        return backoff_seconds(
            retry_state.attempt_number,
            retry_after,
            initial=self._initial,
            maximum=self._maximum,
            retry_after_cap=self._retry_after_cap,
        )
