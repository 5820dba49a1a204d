"""Operators for Camb.ai's batch results: TTS, and every other kind of batch task."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambConnectionConfigError,
    describe_missing,
)
from airflow_provider_camb.hooks.camb import BulkResults, CambHook
from airflow_provider_camb.hooks.result_kinds import result_kind as result_kind_of
from airflow_provider_camb.utils.rendered_values import materialise
from airflow_provider_camb.utils.run_ids import InvalidRunIdsError, normalise_run_ids, plan_chunks
from airflow_provider_camb.utils.xcom_keys import DELIVERED_URLS, MISSING_RUN_IDS

if TYPE_CHECKING:
    from airflow.sdk import Context


class CambBulkResultsOperator(BaseOperator):
    """Fetch the results of any number of Camb.ai runs of one kind, in the fewest API calls allowed.

    The same as :class:`CambBulkTTSResultsOperator` (chunks of 2 to 5, narrowing of a rejected
    chunk, ``fail_on_missing``, the same XCom keys) for any kind of batch task: ``tts``,
    ``dubbing``, ``translation``, ``text_to_sound``, ``transcription``, ``audio_separation`` or
    ``stories``. XCom ``return_value`` is ``{"<run_id>": <result>}``, each result read as the API
    documents it (see :meth:`~airflow_provider_camb.hooks.camb.CambHook.get_bulk_results`): a URL
    for ``tts`` and ``text_to_sound``, the list of texts for ``translation``, the transcript list
    for ``transcription``, the object with its URLs for the others.

    :param result_kind: the runs' kind.
    :param run_ids: the run IDs (templated), in any form :class:`CambBulkTTSResultsOperator` takes.
    :param camb_conn_id: the Airflow connection holding the Camb.ai API key.
    :param fail_on_missing: fail the task when any run comes back without a result (default), or
        return the partial map and list the missing runs under ``camb_missing_run_ids``.
    """

    template_fields: Sequence[str] = ("run_ids",)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        result_kind: str,
        run_ids: Any,
        camb_conn_id: str = CambHook.default_conn_name,
        fail_on_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.result_kind = result_kind_of(result_kind).name
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}: {err}") from None
        self.run_ids = run_ids
        self.camb_conn_id = camb_conn_id
        self.fail_on_missing = fail_on_missing

    @cached_property
    def hook(self) -> CambHook:
        """The Camb.ai hook, built on first use (never while the DAG file is parsed)."""
        return CambHook(camb_conn_id=self.camb_conn_id)

    @property
    def _thing(self) -> str:
        """What one run's result is called in log lines."""
        return "audio URL" if self.result_kind == "tts" else f"{self.result_kind} result"

    @property
    def _things(self) -> str:
        return f"{self._thing}s"

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            run_ids = normalise_run_ids(_flatten_batches(self.run_ids))
        except InvalidRunIdsError as err:
            # No retry can turn "abc" or -3 into a run ID.
            raise AirflowFailException(f"Invalid run_ids: {err}") from err

        self.log.info(
            "Fetching %s for %d Camb.ai run IDs in %d request(s).",
            self._things,
            len(run_ids),
            len(plan_chunks(run_ids)),
        )
        try:
            answer = self.hook.fetch_bulk_results(self.result_kind, run_ids)
        except (CambAuthError, CambConnectionConfigError) as err:
            # A rejected key or a connection without one stays wrong however often we retry.
            raise AirflowFailException(str(err)) from err
        finally:
            self.hook.close()

        if answer.missing:
            return self._handle_missing(context, answer)
        self.log.info("Received %s for all %d Camb.ai run IDs.", self._things, len(answer.found))
        return _as_xcom_map(answer.found)

    def _handle_missing(self, context: Context, answer: BulkResults) -> dict[str, Any]:
        ti = context["ti"]
        delivered = _as_xcom_map(answer.found)
        missing = {str(run_id): reason or "no reason given" for run_id, reason in answer.missing.items()}
        if self.fail_on_missing:
            # Pushed before failing, so whatever did arrive can still be used downstream.
            ti.xcom_push(key=DELIVERED_URLS, value=delivered)
        ti.xcom_push(key=MISSING_RUN_IDS, value=missing)
        if not self.fail_on_missing:
            self.log.warning(
                "Camb.ai returned no %s for %d of %d run IDs: %s. Returning the %d that arrived; "
                "the missing ones are in XCom %r.",
                self._thing,
                len(answer.missing),
                len(answer.found) + len(answer.missing),
                describe_missing(answer.missing),
                len(delivered),
                MISSING_RUN_IDS,
            )
            return delivered
        self.log.error(
            "%d %s that did arrive are in XCom %r, the missing run IDs in %r. "
            "Set fail_on_missing=False to carry on with the partial map.",
            len(delivered),
            self._things,
            DELIVERED_URLS,
            MISSING_RUN_IDS,
        )
        # Deliberately not AirflowFailException: the API gives the same answer for a run that does
        # not exist and one that has not finished yet (left out of the bulk answer, or HTTP 400),
        # and the second does appear later. So the task's own `retries` decide; the default of 0
        # fails at once, and a wasted retry costs only a few cheap API calls.
        raise answer.error()


class CambBulkTTSResultsOperator(CambBulkResultsOperator):
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

    def __init__(
        self,
        *,
        run_ids: Any,
        camb_conn_id: str = CambHook.default_conn_name,
        fail_on_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            result_kind="tts",
            run_ids=run_ids,
            camb_conn_id=camb_conn_id,
            fail_on_missing=fail_on_missing,
            **kwargs,
        )


def _as_xcom_map(results: dict[int, Any]) -> dict[str, Any]:
    # XCom is JSON: int keys would come back as strings anyway, so make them strings up front.
    return {str(run_id): result for run_id, result in results.items()}


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
