"""The end-to-end example DAG: it parses cleanly, and sensor -> bulk -> transfer runs for real."""

from __future__ import annotations

import hashlib

from tests.airflow_support import load_example_dag
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "example_dags" / "example_camb_tts_to_storage.py"
DAG_ID = "example_camb_tts_to_storage"


def test_example_dag_imports_without_errors_or_warnings(recwarn):
    dag = load_example_dag(DAG_ID)

    assert dag.schedule is None
    assert dag.doc_md
    assert set(dag.params) == {"camb_task_ids", "destination", "destination_conn_id"}
    assert dag.params["destination"] == "file:///tmp/camb-audio/"
    assert sorted(dag.task_ids) == ["fetch_urls", "store_audio", "wait_for_tts"]
    assert dag.get_task("wait_for_tts").deferrable
    assert not [w for w in recwarn if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    text = EXAMPLE.read_text()
    start, end = "# [START howto_transfer_camb_tts_to_storage]", "# [END howto_transfer_camb_tts_to_storage]"
    assert text.count(start) == text.count(end) == 1 and text.index(start) < text.index(end)


def test_example_dag_stores_the_audio_of_finished_tasks(dag_runner, camb_emulator, tmp_path):
    task_ids = camb_emulator.add_tts_tasks(3, size_bytes=80_000)
    run_ids = [camb_emulator.run_id_for_task(task_id) for task_id in task_ids]

    dag_run = dag_runner.run(
        load_example_dag(DAG_ID),
        run_conf={"camb_task_ids": task_ids, "destination": tmp_path.as_uri() + "/"},
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "store_audio") == {
        str(run_id): f"file://{tmp_path}/{run_id}.flac" for run_id in run_ids
    }
    for run_id in run_ids:
        digest = hashlib.sha256((tmp_path / f"{run_id}.flac").read_bytes()).hexdigest()
        assert digest == camb_emulator.audio_sha256(run_id)
    assert not any(entry.api_key_sent for entry in camb_emulator.requests("download"))
