"""The DAG that ``bench/celery_1000.py`` runs under CeleryExecutor.

The benchmark copies this file into a throwaway DAG folder and triggers it with a conf of
``{"camb_task_ids": [...], "batch_size": 1, "destination": "file:///..."}``:

1. ``split_ids`` cuts the task IDs into batches (one ID per batch by default),
2. ``wait_for_tts`` maps the deferrable ``CambTTSTaskSensor`` over the batches: each mapped
   sensor checks once on a Celery worker, waits in the triggerer, and resumes on a worker,
3. ``fetch_urls`` turns every run ID into an audio URL in ``ceil(N / 5)`` bulk calls,
4. ``store_audio`` streams every file into the destination folder.

Every task that calls the Camb.ai API takes a slot of the ``camb_api`` pool, which the benchmark
creates, as the deployment guide recommends.
"""

from __future__ import annotations

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator

DAG_ID = "camb_celery_bench"
# Seconds between the trigger's polls; the emulator's tasks are done after one PENDING answer.
POLL_INTERVAL = 5.0

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    # The pool, not this, is what bounds the API calls; keep it out of the way.
    max_active_tasks=64,
    tags=["bench", "camb.ai"],
) as dag:

    @task
    def split_ids() -> list[list[str]]:
        conf = get_current_context()["dag_run"].conf or {}
        ids = [str(task_id) for task_id in conf["camb_task_ids"]]
        size = int(conf.get("batch_size", 1))
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    # [START deployment_camb_pool]
    # Every task that calls the Camb.ai API takes a slot of the pool made with
    # `airflow pools set camb_api 16 "Camb.ai API"`; a deferred sensor gives its slot back.
    wait_for_tts = CambTTSTaskSensor.partial(
        task_id="wait_for_tts",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=60 * 60,
        pool="camb_api",
    ).expand(camb_task_ids=split_ids())

    # The mapped sensors' lists of run IDs are flattened into one list.
    fetch_urls = CambBulkTTSResultsOperator(
        task_id="fetch_urls", run_ids=wait_for_tts.output, pool="camb_api"
    )

    store_audio = CambTTSToStorageOperator(
        task_id="store_audio",
        urls=fetch_urls.output,
        destination="{{ dag_run.conf['destination'] }}",
        filename_template="{run_id}.{ext}",
        max_concurrency=8,
        pool="camb_api",
    )
    # [END deployment_camb_pool]
