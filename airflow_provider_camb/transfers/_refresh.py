"""Fresh signed URLs for runs whose URLs expired, in as few bulk calls as the API allows.

Signed URLs often expire together (they were fetched together), so the download threads that
need a fresh one tend to ask at the same moment. One of them (the leader) gathers every request
that arrives while it waits a moment and while its call is in flight, and sends them together
through ``POST /tts-results``: ``ceil(k / 5)`` calls for ``k`` runs instead of ``k`` single
calls one after the other.

Requests are keyed: by run ID for TTS (one file per run), by ``(run ID, field)`` for the kinds
whose results carry several URLs; :func:`kind_fetcher` answers both, asking for each run once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from airflow_provider_camb.exceptions import CambRunsMissingError
from airflow_provider_camb.hooks.result_values import result_urls
from airflow_provider_camb.transfers._download import PermanentDownloadError
from airflow_provider_camb.transfers._inputs import InvalidTransferInputError, check_download_url

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    from airflow_provider_camb.hooks.camb import CambHook
    from airflow_provider_camb.hooks.result_kinds import ResultKind


#: How an unusable fresh URL is described; callers tell it apart from a run the API lacks.
UNUSABLE_URL = "Camb.ai returned an unusable URL"


class BatchedUrlRefresher:
    """Hands out fresh URLs to many threads, batching the requests that arrive together.

    :param fetch: answers one batch of keys, one URL or error each (see :func:`kind_fetcher`).
    :param gather_seconds: how long the leader waits for other threads before calling the API.
    """

    def __init__(
        self,
        fetch: Callable[[list[Any]], dict[Any, str | Exception]],
        gather_seconds: float = 0.05,
    ) -> None:
        self._fetch = fetch
        self._gather_seconds = gather_seconds
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, Future[str]] = {}
        self._leading = False

    def refresh(self, run_id: Hashable) -> str:
        """A fresh, checked download URL for ``run_id`` (or a ``(run ID, field)`` key); blocks
        until the batch is answered.

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

    def refresh_many(self, run_ids: Iterable[Any]) -> tuple[dict[Any, str], dict[Any, str | None]]:
        """``(fresh URLs, reasons for the runs without one)`` in one batch, from the calling thread.

        :param run_ids: the runs (or keys) whose URLs expired.
        """
        fresh: dict[Any, str] = {}
        lost: dict[Any, str | None] = {}
        for run_id, outcome in self._fetch(list(run_ids)).items():
            if isinstance(outcome, str):
                fresh[run_id] = outcome
            elif isinstance(outcome, CambRunsMissingError):
                lost[run_id] = next(iter(outcome.missing.values()), None)
            else:
                lost[run_id] = str(outcome)
        return fresh, lost

    def _lead(self) -> None:
        """Answer batches until nobody waits; a waiter that arrives meanwhile joins the next one."""
        batch: dict[Hashable, Future[str]] = {}
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


def kind_fetcher(
    hook: Callable[[], CambHook], kind: ResultKind
) -> Callable[[list[Any]], dict[Any, str | Exception]]:
    """A batch fetcher for keys of ``kind``: run IDs (TTS, whose result is one URL) or
    ``(run ID, field)``; each run asked for once through ``fetch_bulk_results`` (``ceil(k / 5)``
    calls for ``k`` runs), the field's URL picked by ``result_urls``.

    :param hook: returns the Camb.ai hook.
    :param kind: the runs' kind.
    """

    def fetch(keys: list[Any]) -> dict[Any, str | Exception]:
        # A TTS result is a URL, which result_urls names "output_url".
        fields = {key: key if isinstance(key, tuple) else (key, "output_url") for key in keys}
        run_ids = list(dict.fromkeys(run_id for run_id, _ in fields.values()))
        answer = hook().fetch_bulk_results(kind, run_ids)
        results, missing = answer.found, answer.missing
        outcomes: dict[Any, str | Exception] = {}
        for key, (run_id, field) in fields.items():
            if run_id not in results:
                outcomes[key] = CambRunsMissingError({}, {run_id: missing.get(run_id)})
                continue
            url = result_urls(kind, results[run_id]).get(field)
            if url is None:
                outcomes[key] = PermanentDownloadError(
                    f"{UNUSABLE_URL}: the fresh {kind.name} result of run {run_id} has no {field}"
                )
                continue
            try:
                outcomes[key] = check_download_url(url)
            except InvalidTransferInputError as err:
                outcomes[key] = PermanentDownloadError(f"{UNUSABLE_URL}: {err}")
        return outcomes

    return fetch
