"""Fresh signed URLs for runs whose URLs expired, in as few bulk calls as the API allows.

Signed URLs often expire together (they were fetched together), so the download threads that
need a fresh one tend to ask at the same moment. One of them (the leader) gathers every request
that arrives while it waits a moment and while its call is in flight, and sends them together
through ``POST /tts-results``: ``ceil(k / 5)`` calls for ``k`` runs instead of ``k`` single
calls one after the other.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from airflow_provider_camb.exceptions import CambRunsMissingError
from airflow_provider_camb.transfers._download import PermanentDownloadError
from airflow_provider_camb.transfers._inputs import InvalidTransferInputError, check_download_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_provider_camb.hooks.camb import CambHook

#: How an unusable fresh URL is described; callers tell it apart from a run the API lacks.
UNUSABLE_URL = "Camb.ai returned an unusable URL"


class BatchedUrlRefresher:
    """Hands out fresh URLs to many threads, batching the requests that arrive together.

    :param hook: returns the Camb.ai hook (built on first use, never in ``__init__``).
    :param gather_seconds: how long the leader waits for other threads before calling the API.
    """

    def __init__(self, hook: Callable[[], CambHook], gather_seconds: float = 0.05) -> None:
        self._hook = hook
        self._gather_seconds = gather_seconds
        self._lock = threading.Lock()
        self._waiting: dict[int, Future[str]] = {}
        self._leading = False

    def refresh(self, run_id: int) -> str:
        """A fresh, checked download URL for ``run_id``; blocks until the batch is answered.

        :raises CambRunsMissingError: the API served no URL for this run.
        :raises PermanentDownloadError: the API served an unusable URL.
        """
        with self._lock:
            future = self._waiting.get(run_id)
            if future is None:
                future = self._waiting[run_id] = Future()
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        return future.result()

    def refresh_many(self, run_ids: Iterable[int]) -> tuple[dict[int, str], dict[int, str | None]]:
        """``(fresh URLs, reasons for the runs without one)`` in one batch, from the calling thread.

        :param run_ids: the runs whose URLs expired.
        """
        fresh: dict[int, str] = {}
        lost: dict[int, str | None] = {}
        for run_id, outcome in self._fetch(list(run_ids)).items():
            if isinstance(outcome, str):
                fresh[run_id] = outcome
            elif isinstance(outcome, CambRunsMissingError):
                lost[run_id] = outcome.missing.get(run_id)
            else:
                lost[run_id] = str(outcome)
        return fresh, lost

    def _lead(self) -> None:
        """Answer batches until nobody waits; a waiter that arrives meanwhile joins the next one."""
        batch: dict[int, Future[str]] = {}
        try:
            time.sleep(self._gather_seconds)
            while True:
                with self._lock:
                    batch, self._waiting = self._waiting, {}
                    if not batch:
                        self._leading = False
                        return
                for run_id, outcome in self._fetch(list(batch)).items():
                    if isinstance(outcome, str):
                        batch[run_id].set_result(outcome)
                    else:
                        batch[run_id].set_exception(outcome)
                batch = {}
        except BaseException as err:
            # The API call failed as a whole (a rejected key, an outage after retries): every
            # waiter hears it, and the next thread to ask becomes the leader.
            with self._lock:
                orphans = {**batch, **self._waiting}
                self._waiting = {}
                self._leading = False
            for future in orphans.values():
                if not future.done():
                    future.set_exception(err)
            if not isinstance(err, Exception):
                raise

    def _fetch(self, run_ids: list[int]) -> dict[int, str | Exception]:
        """One URL or one error per run, through the hook's chunked bulk call."""
        try:
            urls = self._hook().get_tts_results(run_ids)
            missing: dict[int, str | None] = {}
        except CambRunsMissingError as err:
            urls, missing = err.urls, err.missing
        outcomes: dict[int, str | Exception] = {}
        for run_id in run_ids:
            if run_id not in urls:
                outcomes[run_id] = CambRunsMissingError({}, {run_id: missing.get(run_id)})
                continue
            try:
                outcomes[run_id] = check_download_url(urls[run_id])
            except InvalidTransferInputError as err:
                outcomes[run_id] = PermanentDownloadError(f"{UNUSABLE_URL}: {err}")
        return outcomes
