"""CambBulkTTSResultsOperator in real DAG runs (``dag.test()`` on SQLite) against the Camb.ai emulator.

Each test reads its results from the metadata DB and checks what the emulator was sent.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.utils.xcom_keys import DELIVERED_URLS, MISSING_RUN_IDS

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner

# Known to the emulator as nothing at all: the bulk answer leaves it out.
UNKNOWN_RUN_ID = 999_999


def new_dag(request: pytest.FixtureRequest, **kwargs: Any) -> DAG:
    """A DAG named after the test, so every test writes its own rows."""
    name = request.node.name.replace("[", "__").replace("]", "").replace("-", "_")
    return DAG(dag_id=f"t_bulk_{name}"[:200], schedule=None, **kwargs)


def bulk_bodies(emu: CambEmulator) -> list[list[int]]:
    return [entry.json["run_ids"] for entry in emu.requests("tts_results")]


def assert_valid_bulk_bodies(emu: CambEmulator, expected_ids: list[int]) -> None:
    """One call per ceil(N / 5), each 2 to 5 unique positive ints, all answered 200, in input order."""
    entries = emu.requests("tts_results")
    assert len(entries) == math.ceil(len(expected_ids) / 5)
    for entry in entries:
        assert entry.method == "POST"
        assert entry.status == 200
        assert entry.api_key_sent
        ids = entry.json["run_ids"]
        assert 2 <= len(ids) <= 5
        assert len(set(ids)) == len(ids)
        assert all(type(run_id) is int and run_id > 0 for run_id in ids)
    assert [run_id for body in bulk_bodies(emu) for run_id in body] == expected_ids


def rendered_run_ids(dag_run: Any, task_id: str) -> Any:
    """What ``run_ids`` rendered to, as Airflow stored it for the UI's Rendered Template view."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session)
        fields = RenderedTaskInstanceFields.get_templated_fields(ti, session=session)
    assert fields is not None
    return fields["run_ids"]


def assert_urls_for(result: dict[str, str], emu: CambEmulator, run_ids: list[int]) -> None:
    assert list(result) == [str(run_id) for run_id in run_ids]
    for run_id, url in result.items():
        assert url.startswith(f"{emu.server_url}/files/tts/{run_id}.")


@pytest.mark.parametrize("count", [2, 7, 11])
def test_n_run_ids_arrive_in_xcom_after_ceil_n_over_5_bulk_calls(
    request, dag_runner: DagRunner, camb_emulator: CambEmulator, count
):
    run_ids = camb_emulator.add_tts_runs(count)
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(task_id="bulk", run_ids=run_ids)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert_urls_for(dag_runner.xcom(dr, "bulk"), camb_emulator, run_ids)
    assert_valid_bulk_bodies(camb_emulator, run_ids)
    assert camb_emulator.journal == camb_emulator.requests("tts_results")
    assert dag_runner.xcom(dr, "bulk", MISSING_RUN_IDS) is None


def test_the_object_answer_shape_gives_the_same_xcom(request, dag_runner, camb_emulator):
    camb_emulator.bulk_value_shape = "object"
    run_ids = camb_emulator.add_tts_runs(3)
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(task_id="bulk", run_ids=run_ids)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert_urls_for(dag_runner.xcom(dr, "bulk"), camb_emulator, run_ids)


def test_mapped_over_batches_each_map_index_gets_its_own_map(request, dag_runner, camb_emulator):
    run_ids = camb_emulator.add_tts_runs(10)
    batches = [run_ids[:3], run_ids[3:], run_ids[9:]]
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator.partial(task_id="bulk").expand(run_ids=batches)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    results = dag_runner.xcoms(dr, "bulk")
    assert sorted(results) == [0, 1, 2]
    for index, batch in enumerate(batches):
        assert_urls_for(results[index], camb_emulator, batch)
    # 3 -> one call; 7 -> 4+3; the lone ID of the third batch goes to the single-run endpoint.
    assert sorted(len(body) for body in bulk_bodies(camb_emulator)) == [3, 3, 4]
    assert [entry.path for entry in camb_emulator.requests("tts_result")] == [
        f"/apis/tts-result/{run_ids[9]}"
    ]


@pytest.mark.parametrize(
    ("how", "native"),
    [
        ("xcom_pull_template", False),
        ("xcom_pull_template", True),
        ("params_template", False),
        ("params_template", True),
        ("xcomarg", False),
    ],
)
def test_run_ids_from_an_upstream_task_or_param_are_resolved(request, dag_runner, camb_emulator, how, native):
    run_ids = camb_emulator.add_tts_runs(6)
    with new_dag(request, render_template_as_native_obj=native, params={"ids": run_ids}) as dag:

        @task
        def find_run_ids() -> list[int]:
            return run_ids

        upstream = find_run_ids()
        if how == "xcomarg":
            source: Any = upstream
        elif how == "xcom_pull_template":
            source = "{{ ti.xcom_pull(task_ids='find_run_ids') }}"
        else:
            source = "{{ params.ids }}"
        bulk = CambBulkTTSResultsOperator(task_id="bulk", run_ids=source)
        upstream >> bulk

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert_urls_for(dag_runner.xcom(dr, "bulk"), camb_emulator, run_ids)
    assert bulk_bodies(camb_emulator) == [run_ids[:3], run_ids[3:]]
    if how != "xcomarg":
        # Without native rendering the operator really did get the text "[1001, 1002, ...]".
        rendered = rendered_run_ids(dr, "bulk")
        assert rendered == (run_ids if native else str(run_ids))


def test_a_missing_run_fails_the_task_after_pushing_what_arrived(request, dag_runner, camb_emulator):
    found = camb_emulator.add_tts_runs(4)
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(task_id="bulk", run_ids=[*found[:2], UNKNOWN_RUN_ID, *found[2:]])

    dr = dag_runner.run(dag)

    assert dr.state == "failed"
    assert dag_runner.task_states(dr) == {"bulk": "failed"}
    assert dag_runner.xcom(dr, "bulk") is None
    assert_urls_for(dag_runner.xcom(dr, "bulk", DELIVERED_URLS), camb_emulator, found)
    assert dag_runner.xcom(dr, "bulk", MISSING_RUN_IDS) == {
        str(UNKNOWN_RUN_ID): "left out of the POST /tts-results answer"
    }


def test_an_unfinished_run_fails_the_try_and_arrives_on_the_retry(request, dag_runner, camb_emulator):
    (ready,) = camb_emulator.add_tts_runs(1)
    (unfinished,) = camb_emulator.add_tts_runs(1, finished=False)

    def finish_the_run(context: Any) -> None:
        camb_emulator.finish_run(unfinished)

    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(
            task_id="bulk",
            run_ids=[ready, unfinished],
            retries=1,
            retry_delay=timedelta(0),
            on_retry_callback=finish_the_run,
        )

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert_urls_for(dag_runner.xcom(dr, "bulk"), camb_emulator, [ready, unfinished])
    assert bulk_bodies(camb_emulator) == [[ready, unfinished], [ready, unfinished]]


def test_a_missing_run_with_fail_on_missing_false_succeeds_with_the_partial_map(
    request, dag_runner, camb_emulator
):
    found = camb_emulator.add_tts_runs(5)
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(task_id="bulk", run_ids=[UNKNOWN_RUN_ID, *found], fail_on_missing=False)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert_urls_for(dag_runner.xcom(dr, "bulk"), camb_emulator, found)
    assert dag_runner.xcom(dr, "bulk", MISSING_RUN_IDS) == {
        str(UNKNOWN_RUN_ID): "left out of the POST /tts-results answer"
    }
    assert dag_runner.xcom(dr, "bulk", DELIVERED_URLS) is None


def test_a_rejected_chunk_is_narrowed_and_only_the_bad_id_is_missing(request, dag_runner, camb_emulator):
    camb_emulator.bulk_missing = "reject"
    found = camb_emulator.add_tts_runs(3)
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(task_id="bulk", run_ids=[*found, UNKNOWN_RUN_ID], fail_on_missing=False)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert_urls_for(dag_runner.xcom(dr, "bulk"), camb_emulator, found)
    assert dag_runner.xcom(dr, "bulk", MISSING_RUN_IDS) == {
        str(UNKNOWN_RUN_ID): f"Run ID {UNKNOWN_RUN_ID} is not a valid TTS run"
    }


def test_bad_input_fails_at_once_without_retries_and_without_any_request(request, dag_runner, camb_emulator):
    with new_dag(request) as dag:
        CambBulkTTSResultsOperator(
            task_id="bulk", run_ids=[1001, True, -3, "abc"], retries=3, retry_delay=timedelta(0)
        )

    dr = dag_runner.run(dag)

    assert dr.state == "failed"
    # "failed", not "up_for_retry": AirflowFailException skips the three retries.
    assert dag_runner.task_states(dr) == {"bulk": "failed"}
    assert camb_emulator.journal == []
