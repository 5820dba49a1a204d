"""The nightly pipeline for the async TTS flow: each day's Camb.ai task IDs become that day's audio."""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, task
from airflow.sdk.exceptions import AirflowSkipException

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator

#: The audio of each night; its asset event lists the files (``{"files": [...]}``).
NIGHTLY_LEGACY_AUDIO = Asset("camb_nightly_legacy_audio")

SOURCE = "{{ var.value.get('camb_nightly_source', 'file:///tmp/camb-nightly/texts/') }}"
DESTINATION = (
    "{{ var.value.get('camb_nightly_destination', 'file:///tmp/camb-nightly/audio/').rstrip('/') }}/{{ ds }}/"
)
STORAGE_CONN_ID = "{{ var.value.get('camb_nightly_storage_conn_id', '') }}"

DOC_MD = """
### Camb.ai nightly audio, async TTS flow: each day's task IDs into that day's folder

For teams whose texts are submitted to Camb.ai's asynchronous `POST /tts` by another system,
which lists each day's task IDs in `<source>/<ds>/camb_task_ids.json` (a JSON array).

1. `read_task_ids` reads the day's list; a day without one is skipped (the run succeeds).
2. `wait_for_tts` waits, deferred to the triggerer, until every task has succeeded.
3. `fetch_urls` gets the audio URLs in bulk; `store_audio` streams each file into
   `<destination>/<ds>/<run_id>.wav`, whole or not at all, and sends the asset event
   `camb_nightly_legacy_audio` listing the day's files.

A re-run checks the task statuses and URLs again (these calls are not billed), but copies no file
that is already there and synthesises nothing. Same Variables as `example_camb_nightly_audio`.
For new pipelines prefer `example_camb_nightly_audio`: Camb.ai deprecates the async `POST /tts`.
"""


with DAG(
    dag_id="example_camb_nightly_audio_legacy",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
) as dag:
    # [START howto_sensor_camb_nightly_audio_legacy]
    @task
    def read_task_ids(source: str, storage_conn_id: str, ds: str | None = None) -> list[str]:
        listing = ObjectStoragePath(
            f"{source.rstrip('/')}/{ds}/camb_task_ids.json", conn_id=storage_conn_id or None
        )
        if not listing.exists():
            raise AirflowSkipException(f"No {listing}: no Camb.ai tasks for {ds}.")
        task_ids = json.loads(listing.read_text(encoding="utf-8"))
        if not task_ids:
            raise AirflowSkipException(f"{listing} lists no Camb.ai tasks for {ds}.")
        return [str(task_id) for task_id in task_ids]

    wait_for_tts = CambTTSTaskSensor(
        task_id="wait_for_tts",
        camb_task_ids=read_task_ids(SOURCE, STORAGE_CONN_ID),
        deferrable=True,
        poke_interval=60,  # the wait is in the triggerer; a minute keeps the polling cheap
        timeout=6 * 60 * 60,
    )
    fetch_urls = CambBulkTTSResultsOperator(task_id="fetch_urls", run_ids=wait_for_tts.output)
    store_audio = CambTTSToStorageOperator(
        task_id="store_audio",
        urls=fetch_urls.output,
        destination=DESTINATION,
        destination_conn_id=STORAGE_CONN_ID,
        filename_template="{run_id}.{ext}",
        overwrite=False,  # files already there are not copied again
        outlets=[NIGHTLY_LEGACY_AUDIO],
    )
    # [END howto_sensor_camb_nightly_audio_legacy]
