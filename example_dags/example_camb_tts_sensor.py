"""Wait for Camb.ai TTS tasks with CambTTSTaskSensor, then fetch their audio URLs."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor

DOC_MD = """
### Wait for Camb.ai TTS tasks, then fetch their audio

`CambTTSTaskSensor` waits until every task in the `camb_task_ids` parameter is `SUCCESS`,
deferred to the triggerer so no worker slot is held, and returns their run IDs in the same order.
`CambBulkTTSResultsOperator` turns those run IDs into signed audio URLs.

* Trigger it with your own task IDs ("Trigger DAG w/ config"), e.g. those printed by
  `camb-emulator --seed-demo 3`.
* A task that ends `ERROR`, `TIMEOUT` or `PAYMENT_REQUIRED` fails the sensor at once, naming it.
* Needs the `camb_default` connection (the API key in its password field) and a running triggerer.
"""

with DAG(
    dag_id="example_camb_tts_sensor",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
    # camb_task_ids below renders to a real list, not to its text.
    render_template_as_native_obj=True,
    params={
        "camb_task_ids": Param(
            ["replace-with-a-camb-task-id"],
            type="array",
            items={"type": "string", "minLength": 1},
            minItems=1,
            title="Camb.ai TTS task IDs",
            description="The task_id values returned by POST /tts.",
        ),
    },
) as dag:
    # [START howto_sensor_camb_tts_task]
    wait_for_tts = CambTTSTaskSensor(
        task_id="wait_for_tts",
        camb_task_ids="{{ params.camb_task_ids }}",
        camb_conn_id="camb_default",
        # Wait in the triggerer: no worker slot is held while Camb.ai synthesises.
        deferrable=True,
        poll_interval=15,  # seconds between the trigger's status polls
        timeout=60 * 60,  # give up (AirflowSensorTimeout) after an hour
        # Up to 3 polls in a row may fail (after the hook's own retries) before the sensor does.
        max_consecutive_errors=3,
    )

    # The sensor returns the run IDs in task order; the {task_id: run_id} map is under the
    # XCom key "camb_run_ids_by_task".
    fetch_urls = CambBulkTTSResultsOperator(task_id="fetch_urls", run_ids=wait_for_tts.output)
    # [END howto_sensor_camb_tts_task]
