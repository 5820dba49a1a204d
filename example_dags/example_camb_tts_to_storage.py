"""End to end: wait for Camb.ai TTS tasks, fetch their audio URLs, stream the audio into storage."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator

DOC_MD = """
### Camb.ai TTS audio to storage

1. `wait_for_tts` waits (deferred, off the worker) until every TTS task in `camb_task_ids` has
   succeeded and returns their run IDs.
2. `fetch_urls` turns the run IDs into signed audio URLs (`{"<run_id>": "<url>"}`).
3. `store_audio` streams each file into `destination` (any ObjectStoragePath URI:
   `file:///...`, `s3://bucket/prefix/`, `gs://...`), whole or not at all, skipping files that are
   already there. Expired URLs are refreshed through the API.

Trigger it with your task IDs ("Trigger DAG w/ config"). For S3, set `destination` to
`s3://bucket/prefix/` and `destination_conn_id` to an AWS connection. Needs the `camb_default`
connection. `make demo` runs this DAG against the bundled emulator.
"""

with DAG(
    dag_id="example_camb_tts_to_storage",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
    params={
        "camb_task_ids": Param(
            [],
            type="array",
            items={"type": "string"},
            title="TTS task IDs",
            description="The task_id of each Camb.ai TTS task (returned by POST /tts).",
        ),
        "destination": Param(
            "file:///tmp/camb-audio/",
            type="string",
            title="Destination folder",
            description="A folder URI: file:///abs/dir/, s3://bucket/prefix/, gs://bucket/prefix/ ...",
        ),
        "destination_conn_id": Param(
            None,
            type=["null", "string"],
            title="Storage connection",
            description="The connection for the destination (e.g. an AWS connection for s3://).",
        ),
    },
) as dag:
    # [START howto_transfer_camb_tts_to_storage]
    wait_for_tts = CambTTSTaskSensor(
        task_id="wait_for_tts",
        camb_task_ids="{{ params.camb_task_ids }}",
        deferrable=True,
        # Short enough for a demo whose tasks finish in seconds; for real workloads 30-60 s
        # keeps the polling cost down (the wait is in the triggerer, not on a worker).
        poke_interval=5,
        timeout=60 * 60,
    )

    fetch_urls = CambBulkTTSResultsOperator(
        task_id="fetch_urls",
        run_ids=wait_for_tts.output,
    )

    store_audio = CambTTSToStorageOperator(
        task_id="store_audio",
        urls=fetch_urls.output,
        destination="{{ params.destination }}",
        # A null Param renders as "None" without native rendering; "" means "no connection".
        destination_conn_id="{{ params.destination_conn_id or '' }}",
        filename_template="{run_id}.{ext}",
        overwrite=False,  # a re-run copies only what is missing
        max_concurrency=8,  # files in flight (the default)
    )
    # return_value: {"<run_id>": "<destination URI>"}; sizes under XCom key "camb_file_sizes".
    # [END howto_transfer_camb_tts_to_storage]
