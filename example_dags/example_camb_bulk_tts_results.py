"""Fetch the audio URLs of many Camb.ai TTS runs with CambBulkTTSResultsOperator."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.utils.redaction import redact_url

log = logging.getLogger(__name__)

DOC_MD = """
### Bulk Camb.ai TTS results

Turns the TTS run IDs in the `run_ids` parameter into signed audio URLs, five runs per API call
at most (`POST /tts-results`), and hands the `{"<run_id>": "<url>"}` map to the next task.

* Trigger it with your own run IDs ("Trigger DAG w/ config"). The default IDs are the first seven
  runs of a freshly seeded emulator (`camb-emulator --seed-demo 7`).
* Needs the `camb_default` connection (the API key in its password field).
* The URLs expire: download them in the same DAG run (see `CambTTSToStorageOperator`).
"""

with DAG(
    dag_id="example_camb_bulk_tts_results",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
    params={
        "run_ids": Param(
            [1001, 1002, 1003, 1004, 1005, 1006, 1007],
            type="array",
            items={"type": "integer", "minimum": 1},
            minItems=1,
            title="TTS run IDs",
            description="Camb.ai TTS run IDs whose audio URLs to fetch.",
        ),
    },
) as dag:
    # [START howto_operator_camb_bulk_tts_results]
    fetch_urls = CambBulkTTSResultsOperator(
        task_id="fetch_urls",
        # Renders to the text "[1001, 1002, ...]" unless the DAG sets
        # render_template_as_native_obj=True; the operator accepts both.
        run_ids="{{ params.run_ids }}",
        camb_conn_id="camb_default",
        # The default, True, fails the task when any run has no URL, after pushing the URLs that
        # did arrive under the XCom key "camb_delivered_urls".
        fail_on_missing=True,
    )

    @task
    def report(urls: dict[str, str]) -> int:
        # Signed URLs are credentials until they expire: log them without their query string.
        for run_id, url in urls.items():
            log.info("Run %s: %s", run_id, redact_url(url))
        return len(urls)

    # At parse time .output is an XComArg; Airflow hands report() the pulled dict at run time.
    report(fetch_urls.output)  # type: ignore[arg-type]
    # [END howto_operator_camb_bulk_tts_results]

    # [START howto_operator_camb_bulk_tts_results_mapped]
    @task
    def split_into_batches(params: dict[str, Any] | None = None) -> list[list[int]]:
        run_ids: list[int] = params["run_ids"] if params else []
        size = 4  # e.g. 500 in real life: each batch is one task instance with its own retries
        return [run_ids[start : start + size] for start in range(0, len(run_ids), size)]

    # One mapped task instance per batch, each pushing its own {"<run_id>": "<url>"} map.
    # fail_on_missing=False: a missing run is listed under "camb_missing_run_ids" instead.
    CambBulkTTSResultsOperator.partial(
        task_id="fetch_urls_per_batch",
        fail_on_missing=False,
    ).expand(run_ids=split_into_batches())
    # [END howto_operator_camb_bulk_tts_results_mapped]
