"""Every example DAG parses as Airflow's DAG processor would: no import errors, no deprecated paths."""

from __future__ import annotations

import warnings

import pytest

from tests.airflow_support import load_example_dag
from tests.conftest import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "example_dags").glob("example_*.py"))
# Each file's main DAG is named after the file; a file may add variants of it.
EXTRA_DAG_IDS = {
    "example_camb_text_to_speech": ["example_camb_text_to_speech_mapped"],
    "example_camb_nightly_audio": ["example_camb_nightly_audio_manifest"],
}
#: The scheduled examples (every other one is triggered by hand, with params).
SCHEDULED = {
    "example_camb_nightly_audio": "@daily",
    "example_camb_nightly_audio_legacy": "@daily",
    "example_camb_nightly_audio_manifest": "asset",
}
DAG_IDS = sorted(dag_id for path in EXAMPLES for dag_id in [path.stem, *EXTRA_DAG_IDS.get(path.stem, [])])


def test_the_examples_folder_is_what_the_docs_promise():
    assert [path.stem for path in EXAMPLES] == [
        "example_camb_bulk_tts_results",
        "example_camb_dubbing",
        "example_camb_nightly_audio",
        "example_camb_nightly_audio_legacy",
        "example_camb_text_to_speech",
        "example_camb_translation",
        "example_camb_tts_sensor",
        "example_camb_tts_to_storage",
    ]


def test_all_examples_load_in_a_dagbag_without_errors_or_deprecation_warnings():
    import airflow  # noqa: F401  (Airflow replaces warnings.showwarning on import: import it first)
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(REPO_ROOT / "example_dags"))

    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == DAG_IDS
    for dag_id in DAG_IDS:
        _assert_documented_and_scheduled_as_promised(bag.dags[dag_id])
    deprecations = [
        f"{w.filename}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, (DeprecationWarning, FutureWarning))
    ]
    assert deprecations == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_is_documented_and_marked_for_the_docs(path):
    dag = load_example_dag(path.stem)
    text = path.read_text()
    _assert_documented_and_scheduled_as_promised(dag)
    assert text.count("# [START ") == text.count("# [END ") >= 1


def _assert_documented_and_scheduled_as_promised(dag) -> None:
    from airflow.sdk import Asset

    assert dag.doc_md, dag.dag_id
    promised = SCHEDULED.get(dag.dag_id)
    if promised is None:
        # Triggered by hand: everything a user sets is a param of the trigger form.
        assert dag.schedule is None and dag.params, dag.dag_id
    elif promised == "asset":
        assert [type(each) for each in dag.schedule] == [Asset], dag.dag_id
    else:
        # Scheduled: configured through Variables read at run time, so a run needs no params.
        assert dag.schedule == promised and not dag.params and dag.catchup is False, dag.dag_id
        assert dag.start_date.tzinfo is not None and dag.start_date.utcoffset().total_seconds() == 0
