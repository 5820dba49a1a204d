"""Probe DAGs for tests/system: deferred CambTTSTaskSensors in a real triggerer.

* ``probe_camb_many_sensors``: 20 sensors, one Camb.ai task each (``params.camb_task_ids[i]``),
  polling every 5 s: the load beside which an unrelated trigger must still fire on time.
* ``probe_camb_one_sensor``: one sensor polling every 2 s, for the triggerer-restart and the
  trigger-log tests.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from airflow_provider_camb.sensors.camb import CambTTSTaskSensor

SENSORS = 20

with DAG(
    dag_id="probe_camb_many_sensors",
    schedule=None,
    catchup=False,
    max_active_tasks=SENSORS,
    tags=["probe"],
    params={"camb_task_ids": Param([], type="array", items={"type": "string"})},
):
    for index in range(SENSORS):
        CambTTSTaskSensor(
            task_id=f"wait_{index:02d}",
            camb_task_ids=f"{{{{ params.camb_task_ids[{index}] }}}}",
            deferrable=True,
            poke_interval=5,
            poll_interval=5,
            timeout=15 * 60,
        )

with DAG(
    dag_id="probe_camb_one_sensor",
    schedule=None,
    catchup=False,
    tags=["probe"],
    render_template_as_native_obj=True,
    params={"camb_task_ids": Param([], type="array", items={"type": "string"})},
):
    CambTTSTaskSensor(
        task_id="wait",
        camb_task_ids="{{ params.camb_task_ids }}",
        deferrable=True,
        poke_interval=2,
        poll_interval=2,
        timeout=15 * 60,
    )
