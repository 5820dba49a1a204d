"""Operators for the Camb.ai TTS API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambConnectionConfigError,
    CambRunsMissingError,
    describe_missing,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.rendered_lists import materialise
from airflow_provider_camb.run_ids import InvalidRunIdsError, normalise_run_ids, plan_chunks
from airflow_provider_camb.xcom_keys import DELIVERED_URLS, MISSING_RUN_IDS

if TYPE_CHECKING:
    from airflow.sdk import Context


class CambBulkTTSResultsOperator(BaseOperator):
    """Fetch the audio URLs of any number of Camb.ai TTS runs, in the fewest API calls allowed.

    Run IDs are checked before any request, de-duplicated (first-seen order kept) and sent to
    ``POST /tts-results`` in chunks of 2 to 5 (``ceil(N / 5)`` calls for ``N >= 2``); a lone ID
    goes to ``GET /tts-result/{run_id}``. Both answer shapes, retries on 429/5xx and the narrowing
    of a rejected chunk to the IDs at fault are the hook's
    (:meth:`~airflow_provider_camb.hooks.camb.CambHook.get_tts_results`).

    XCom ``return_value``: ``{"<run_id>": "<url>"}`` with string keys in input order. The URLs are
    signed and expire (the API does not say when), so download them soon, in the same DAG run.

    When some runs come back without a URL:

    * ``fail_on_missing=True``: the URLs that did arrive are pushed under ``camb_delivered_urls``,
      ``{"<run_id>": "<reason>"}`` under ``camb_missing_run_ids``, and the task fails with
      :class:`~airflow_provider_camb.exceptions.CambRunsMissingError` naming every missing ID and
      its reason. That error honours the task's ``retries``: a run that has not finished yet can
      appear on a later try.
    * ``fail_on_missing=False``: a warning is logged, ``camb_missing_run_ids`` is pushed and the
      partial map is returned.

    Invalid input (nothing at all, bools, zero, negatives, floats, junk strings) fails with
    ``AirflowFailException``, so no retry is spent, before any request, naming each bad value.

    :param run_ids: the run IDs (templated). A list or tuple of ints or numeric strings, a single
        int, an ``XComArg`` (e.g. ``sensor.output``; a mapped upstream's lists are flattened), or
        the string a template renders to without ``render_template_as_native_obj``:
        ``"[1, 2, 3]"``, ``"1,2,3"``, ``"1 2 3"`` or ``"7"``.
    :param camb_conn_id: the Airflow connection holding the Camb.ai API key.
    :param fail_on_missing: fail the task when any run comes back without a URL (default), or
        return the partial map and list the missing runs under ``camb_missing_run_ids``.
    """

    template_fields: Sequence[str] = ("run_ids",)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        run_ids: Any,
        camb_conn_id: str = CambHook.default_conn_name,
        fail_on_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_ids = run_ids
        self.camb_conn_id = camb_conn_id
        self.fail_on_missing = fail_on_missing

    @cached_property
    def hook(self) -> CambHook:
        """The Camb.ai hook, built on first use (never while the DAG file is parsed)."""
        return CambHook(camb_conn_id=self.camb_conn_id)

    def execute(self, context: Context) -> dict[str, str]:
        try:
            run_ids = normalise_run_ids(_flatten_batches(self.run_ids))
        except InvalidRunIdsError as err:
            # No retry can turn "abc" or -3 into a run ID.
            raise AirflowFailException(f"Invalid run_ids: {err}") from err

        self.log.info(
            "Fetching audio URLs for %d Camb.ai run IDs in %d request(s).",
            len(run_ids),
            len(plan_chunks(run_ids)),
        )
        try:
            urls = self.hook.get_tts_results(run_ids)
        except CambRunsMissingError as err:
            return self._handle_missing(context, err)
        except (CambAuthError, CambConnectionConfigError) as err:
            # A rejected key or a connection without one stays wrong however often we retry.
            raise AirflowFailException(str(err)) from err
        finally:
            self.hook.close()

        self.log.info("Received audio URLs for all %d Camb.ai run IDs.", len(urls))
        return _as_xcom_map(urls)

    def _handle_missing(self, context: Context, err: CambRunsMissingError) -> dict[str, str]:
        ti = context["ti"]
        delivered = _as_xcom_map(err.urls)
        missing = {str(run_id): reason or "no reason given" for run_id, reason in err.missing.items()}
        if self.fail_on_missing:
            # Pushed before failing, so whatever did arrive can still be used downstream.
            ti.xcom_push(key=DELIVERED_URLS, value=delivered)
        ti.xcom_push(key=MISSING_RUN_IDS, value=missing)
        if not self.fail_on_missing:
            self.log.warning(
                "Camb.ai returned no audio URL for %d of %d run IDs: %s. Returning the %d that arrived; "
                "the missing ones are in XCom %r.",
                len(err.missing),
                len(err.urls) + len(err.missing),
                describe_missing(err.missing),
                len(delivered),
                MISSING_RUN_IDS,
            )
            return delivered
        self.log.error(
            "%d audio URLs that did arrive are in XCom %r, the missing run IDs in %r. "
            "Set fail_on_missing=False to carry on with the partial map.",
            len(delivered),
            DELIVERED_URLS,
            MISSING_RUN_IDS,
        )
        # Deliberately not AirflowFailException: the API gives the same answer for a run that does
        # not exist and one that has not finished yet (left out of the bulk answer, or HTTP 400),
        # and the second does appear later. So the task's own `retries` decide; the default of 0
        # fails at once, and a wasted retry costs only a few cheap API calls.
        raise err


def _as_xcom_map(urls: dict[int, str]) -> dict[str, str]:
    # XCom is JSON: int keys would come back as strings anyway, so make them strings up front.
    return {str(run_id): url for run_id, url in urls.items()}


def _flatten_batches(value: object) -> object:
    """``[[1, 2], [3]] -> [1, 2, 3]``: what a mapped upstream's output (one list per map index) is.

    Anything else is returned as is, for :func:`normalise_run_ids` to accept or reject.
    """
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        return value
    items = materialise(value)
    if items and all(isinstance(item, (list, tuple)) for item in items):
        return [run_id for batch in items for run_id in batch]
    return items
