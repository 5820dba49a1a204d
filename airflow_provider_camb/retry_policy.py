"""When and how long to wait before retrying a Camb.ai API call. Pure: no Airflow, no I/O."""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING

from tenacity import wait_exponential_jitter
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


class WaitRetryAfterOrBackoff(wait_base):
    """Wait as long as the server's ``Retry-After`` says (capped), else exponential backoff with jitter.

    :param initial: the first backoff in seconds.
    :param maximum: the largest backoff in seconds.
    :param retry_after_cap: the largest ``Retry-After`` honoured, in seconds.
    """

    def __init__(
        self, initial: float = 1.0, maximum: float = 30.0, retry_after_cap: float = MAX_RETRY_AFTER_SECONDS
    ) -> None:
        self._backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)
        self._retry_after_cap = retry_after_cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            response: requests.Response = outcome.result()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                return min(retry_after, self._retry_after_cap)
        return float(self._backoff(retry_state))
