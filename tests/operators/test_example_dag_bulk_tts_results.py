"""The bulk TTS results example DAG: it parses cleanly, and it runs end to end against the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.airflow_support import load_example_dag
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner

EXAMPLE = REPO_ROOT / "example_dags" / "example_camb_bulk_tts_results.py"
DAG_ID = "example_camb_bulk_tts_results"


def test_example_dag_imports_without_errors_or_warnings(recwarn):
    dag = load_example_dag(DAG_ID)

    assert dag.schedule is None
    assert dag.params["run_ids"] == [1001, 1002, 1003, 1004, 1005, 1006, 1007]
    assert dag.doc_md
    assert set(dag.task_ids) == {"fetch_urls", "report", "split_into_batches", "fetch_urls_per_batch"}
    assert not [w for w in recwarn if issubclass(w.category, (DeprecationWarning, FutureWarning))]


def test_example_dag_code_sits_between_its_doc_markers():
    text = EXAMPLE.read_text()
    for marker in ("howto_operator_camb_bulk_tts_results", "howto_operator_camb_bulk_tts_results_mapped"):
        start, end = f"# [START {marker}]", f"# [END {marker}]"
        assert text.count(start) == text.count(end) == 1
        assert text.index(start) < text.index(end)


def test_example_dag_fetches_the_default_runs_of_a_fresh_emulator(
    dag_runner: DagRunner, camb_emulator: CambEmulator
):
    run_ids = camb_emulator.add_tts_runs(7)  # 1001..1007: the Param's default
    dag = load_example_dag(DAG_ID)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    urls = dag_runner.xcom(dr, "fetch_urls")
    assert list(urls) == [str(run_id) for run_id in run_ids]
    assert dag_runner.xcom(dr, "report") == 7
    per_batch = dag_runner.xcoms(dr, "fetch_urls_per_batch")
    assert [list(per_batch[index]) for index in sorted(per_batch)] == [
        ["1001", "1002", "1003", "1004"],
        ["1005", "1006", "1007"],
    ]
    # 7 IDs once as 4+3, then two batches of 4 and 3: four bulk calls, no single-run call.
    assert len(camb_emulator.requests("tts_results")) == 4
    assert camb_emulator.journal == camb_emulator.requests("tts_results")
