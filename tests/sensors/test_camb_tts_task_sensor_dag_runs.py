"""CambTTSTaskSensor in real DAG runs (``dag.test()`` on SQLite) against the Camb.ai emulator.

In deferrable mode ``dag.test()`` runs the trigger inline, so those tests exercise the real
sensor -> trigger -> execute_complete path.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import DAG

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.utils.xcom_keys import RUN_IDS_BY_TASK
from tests.airflow_support import load_example_dag

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner


def new_dag(request: pytest.FixtureRequest) -> DAG:
    """A DAG named after the test, so every test writes its own rows."""
    name = request.node.name.replace("[", "__").replace("]", "").replace("-", "_")
    return DAG(dag_id=f"t_sensor_{name}"[:200], schedule=None)


def wait_sensor(task_ids: Any, **kwargs: Any) -> CambTTSTaskSensor:
    defaults: dict[str, Any] = {"task_id": "wait", "poke_interval": 0.05, "timeout": 30, "retries": 0}
    return CambTTSTaskSensor(camb_task_ids=task_ids, **{**defaults, **kwargs})


def status_polls(emu: CambEmulator) -> Counter[str]:
    return Counter(entry.path.rsplit("/", 1)[-1] for entry in emu.requests("tts_status"))


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_output_feeds_the_bulk_results_operator(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, deferrable: bool
):
    fast = camb_emulator.add_tts_tasks(2)
    slow = camb_emulator.add_tts_tasks(2, pending_polls=3)
    task_ids = [slow[0], fast[0], slow[1], fast[1]]
    expected_run_ids = [camb_emulator.run_id_for_task(task_id) for task_id in task_ids]
    with new_dag(request) as dag:
        sensor = wait_sensor(task_ids, deferrable=deferrable, poll_interval=0.05)
        CambBulkTTSResultsOperator(task_id="fetch", run_ids=sensor.output)

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "wait") == expected_run_ids
    assert dag_runner.xcom(dag_run, "wait", RUN_IDS_BY_TASK) == dict(
        zip(task_ids, expected_run_ids, strict=True)
    )
    assert list(dag_runner.xcom(dag_run, "fetch")) == [str(run_id) for run_id in expected_run_ids]
    # Finished tasks are not asked about again: once each for the fast ones, until SUCCESS for the slow.
    assert status_polls(camb_emulator) == {fast[0]: 1, fast[1]: 1, slow[0]: 4, slow[1]: 4}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_failed_tts_task_fails_the_run_and_names_the_task(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, capsys, deferrable: bool
):
    (good,) = camb_emulator.add_tts_tasks(1, pending_polls=10)
    (bad,) = camb_emulator.add_tts_tasks(
        1, pending_polls=1, outcome="ERROR", exception_reason="SOURCE_TOO_LONG", message="split the text"
    )
    with new_dag(request) as dag:
        wait_sensor([good, bad], deferrable=deferrable, retries=2)

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "failed"
    # AirflowFailException: no retry is spent on a task that failed for good.
    assert dag_runner.task_states(dag_run) == {"wait": "failed"}
    assert f"task {bad} is ERROR; reason: SOURCE_TOO_LONG; message: split the text" in capsys.readouterr().out


def test_failed_tts_task_skips_the_sensor_and_downstream_with_soft_fail(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator
):
    (bad,) = camb_emulator.add_tts_tasks(1, outcome="PAYMENT_REQUIRED")
    with new_dag(request) as dag:
        sensor = wait_sensor([bad], deferrable=False, soft_fail=True)
        after = wait_sensor(sensor.output, task_id="after")
        sensor >> after

    dag_run = dag_runner.run(dag)

    assert dag_runner.task_states(dag_run) == {"wait": "skipped", "after": "skipped"}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_times_out_while_a_task_stays_pending(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, capsys, deferrable: bool
):
    (stuck,) = camb_emulator.add_tts_tasks(1, pending_seconds=600)
    with new_dag(request) as dag:
        wait_sensor([stuck], deferrable=deferrable, poll_interval=0.1, timeout=0.5)

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "failed"
    assert dag_runner.task_states(dag_run) == {"wait": "failed"}
    if deferrable:
        assert f"still unfinished at the deadline: {stuck}" in capsys.readouterr().out


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_server_errors_on_status_calls_are_ridden_out(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, deferrable: bool
):
    task_ids = camb_emulator.add_tts_tasks(2, pending_polls=1)
    # More than the hook's own retries (5 by default) can absorb within one poll.
    camb_emulator.fail_next("tts_status", count=8, status=503)
    with new_dag(request) as dag:
        wait_sensor(task_ids, deferrable=deferrable, poll_interval=0.05, max_concurrent_requests=1)

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "wait") == [camb_emulator.run_id_for_task(t) for t in task_ids]
    assert [entry.status for entry in camb_emulator.requests("tts_status")][:8] == [503] * 8


def test_task_id_the_api_does_not_know_fails_at_once(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, capsys
):
    with new_dag(request) as dag:
        wait_sensor(["no-such-task"], deferrable=True)

    dag_run = dag_runner.run(dag)

    assert dag_runner.task_states(dag_run) == {"wait": "failed"}
    assert len(camb_emulator.requests("tts_status")) == 1
    assert "Cannot wait on Camb.ai TTS tasks: Camb.ai GET /tts/{task_id} returned HTTP 404" in (
        capsys.readouterr().out
    )


def test_mapped_sensors_wait_on_one_batch_each(request, dag_runner: DagRunner, camb_emulator: CambEmulator):
    batches = [camb_emulator.add_tts_tasks(2, pending_polls=1), camb_emulator.add_tts_tasks(1)]
    with new_dag(request) as dag:
        CambTTSTaskSensor.partial(task_id="wait", poke_interval=0.05, timeout=30).expand(
            camb_task_ids=batches
        )

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcoms(dag_run, "wait") == {
        index: [camb_emulator.run_id_for_task(t) for t in batch] for index, batch in enumerate(batches)
    }


def test_example_dag_waits_then_fetches_against_the_emulator(
    dag_runner: DagRunner, camb_emulator: CambEmulator
):
    dag = load_example_dag("example_camb_tts_sensor")
    # PENDING at the sensor's first check, SUCCESS at the trigger's first poll: no 15 s sleep.
    task_ids = camb_emulator.add_tts_tasks(3, pending_polls=1)
    run_ids = [camb_emulator.run_id_for_task(task_id) for task_id in task_ids]

    dag_run = dag_runner.run(dag, run_conf={"camb_task_ids": task_ids})

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "wait_for_tts") == run_ids
    assert list(dag_runner.xcom(dag_run, "fetch_urls")) == [str(run_id) for run_id in run_ids]
    assert status_polls(camb_emulator) == dict.fromkeys(task_ids, 2)


def test_fan_in_over_a_mapped_sensor_reads_its_outputs_without_probing_past_the_end(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, capfd, caplog
):
    batches = [camb_emulator.add_tts_tasks(2), camb_emulator.add_tts_tasks(2), camb_emulator.add_tts_tasks(1)]
    with new_dag(request) as dag:
        mapped = CambTTSTaskSensor.partial(task_id="wait", poke_interval=0.05, timeout=30).expand(
            camb_task_ids=batches
        )
        CambBulkTTSResultsOperator(task_id="fetch", run_ids=mapped.output)

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    expected = [str(camb_emulator.run_id_for_task(t)) for batch in batches for t in batch]
    assert list(dag_runner.xcom(dag_run, "fetch")) == expected
    out, err = capfd.readouterr()
    assert "XCom not found" not in out + err + caplog.text


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize("kind", ["dubbing", "translation", "stories"])
def test_the_generic_sensor_waits_on_any_kind_at_its_status_path(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, deferrable: bool, kind: str
):
    from airflow_provider_camb.sensors.camb import CambTaskSensor

    task_ids = camb_emulator.add_tasks(kind, 2, pending_polls=1)
    with new_dag(request) as dag:
        CambTaskSensor(
            task_id="wait",
            result_kind=kind,
            camb_task_ids=task_ids,
            deferrable=deferrable,
            poke_interval=0.05,
            timeout=30,
        )

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "wait") == [camb_emulator.run_id_for_task(t) for t in task_ids]
    status_path = {"dubbing": "/apis/dub/", "translation": "/apis/translate/", "stories": "/apis/story/"}[
        kind
    ]
    polls = [entry.path for entry in camb_emulator.journal if entry.path.startswith(status_path)]
    assert len(polls) == 4  # PENDING once, then SUCCESS, for each task
