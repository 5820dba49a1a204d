"""Airflow deep-copies tasks (clearing, ``partial_subset``, task subsets) before any of them runs:
nothing on an operator, sensor, trigger or hook may be unpicklable before ``execute()``."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from airflow.sdk import DAG

from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator
from airflow_provider_camb.triggers.camb import CambTTSTaskTrigger


def every_public_task(dag: DAG) -> list[object]:
    with dag:
        bulk = CambBulkTTSResultsOperator(task_id="bulk", run_ids=[1, 2])
        sensor = CambTTSTaskSensor(task_id="wait", camb_task_ids=["a"], deferrable=True)
        transfer = CambTTSToStorageOperator(task_id="store", destination="/tmp/camb-out", run_ids=[1])
        sensor >> bulk >> transfer
    return [bulk, sensor, transfer]


def new_dag() -> DAG:
    return DAG(dag_id="deep_copies", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("index", range(3), ids=["bulk", "sensor", "transfer"])
def test_every_operator_survives_deepcopy(index):
    task = every_public_task(new_dag())[index]
    copied = copy.deepcopy(task)
    assert copied.task_id == task.task_id  # type: ignore[attr-defined]


def test_a_hook_survives_deepcopy_even_after_use(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", '{"conn_type": "camb", "password": "sk-secret-42"}')
    hook = CambHook()
    hook.get_conn()  # a session and its lock exist now
    copied = copy.deepcopy(hook)
    assert copied.get_conn() is not hook.get_conn()
    assert "sk-secret-42" not in repr(copied)


def test_the_trigger_survives_deepcopy():
    trigger = CambTTSTaskTrigger(camb_task_ids=["a"], poll_interval=1.0, end_time=1.0)
    assert copy.deepcopy(trigger).serialize() == trigger.serialize()


def test_partial_subset_of_a_dag_with_every_operator():
    dag = new_dag()
    every_public_task(dag)

    subset = dag.partial_subset(task_ids=["bulk"], include_upstream=True, include_downstream=True)

    assert set(subset.task_dict) == {"wait", "bulk", "store"}
    assert subset.task_dict["store"] is not dag.task_dict["store"]
