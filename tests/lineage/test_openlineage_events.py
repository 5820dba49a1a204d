"""OpenLineage for real: a ``dag.test()`` run of each operator, the provider's listener and its file
transport; the events read back as JSON."""

from __future__ import annotations

import json
import sys
from typing import Any
from unittest import mock

import pytest

from airflow_provider_camb.storage.lineage import storage_dataset, url_dataset
from airflow_provider_camb.testing.pytest_plugin import FIXTURE_API_KEY
from tests.lineage.conftest import dag_id_for, transfer_dag, tts_dag

TEXTS = {"chapter-2": "The second chapter, read aloud.", "chapter-1": "The first chapter, read aloud."}


def complete_event(events: Any, dag_id: str, task_id: str) -> dict[str, Any]:
    """The one COMPLETE event of the task; nothing in any of its events may carry a secret."""
    found = events(f"{dag_id}.{task_id}")
    assert [event["eventType"] for event in found] == ["START", "COMPLETE"]
    text = json.dumps(found)
    assert FIXTURE_API_KEY not in text
    assert "signature" not in text.lower()  # the signed URLs' query
    return found[-1]


def datasets(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return sorted((item["namespace"], item["name"]) for item in event[side])


# -- the transfer --------------------------------------------------------------------------------


def test_a_transfer_to_a_local_folder_reports_the_storage_urls_and_the_local_files(
    dag_runner, request, camb_emulator, tmp_path, openlineage_events
):
    run_ids = camb_emulator.add_tts_runs(2)
    folder = tmp_path / "audio"
    dag_id = dag_id_for(request)

    dag_run = dag_runner.run(transfer_dag(dag_id, run_ids=run_ids, destination=str(folder)))

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    event = complete_event(openlineage_events, dag_id, "transfer")
    assert datasets(event, "inputs") == [
        (camb_emulator.server_url, f"/files/tts/{run_id}.flac") for run_id in run_ids
    ]
    # OpenLineage's local file naming: namespace "file", name the absolute path.
    assert datasets(event, "outputs") == [("file", f"{folder}/{run_id}.flac") for run_id in run_ids]


def test_a_transfer_to_s3_reports_the_bucket_and_keys(
    dag_runner, request, camb_emulator, s3_destination, openlineage_events
):
    bucket, destination, conn_id = s3_destination
    run_ids = camb_emulator.add_tts_runs(2)
    dag_id = dag_id_for(request)

    dag_run = dag_runner.run(
        transfer_dag(dag_id, run_ids=run_ids, destination=destination, destination_conn_id=conn_id)
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    event = complete_event(openlineage_events, dag_id, "transfer")
    assert datasets(event, "outputs") == [
        (f"s3://{bucket}", f"tts/audio/{run_id}.flac") for run_id in run_ids
    ]
    assert conn_id not in json.dumps(event)


def test_files_kept_by_a_rerun_are_still_reported(
    dag_runner, request, camb_emulator, tmp_path, openlineage_events
):
    run_ids = camb_emulator.add_tts_runs(2)
    folder = tmp_path / "audio"
    first_id, second_id = dag_id_for(request), dag_id_for(request, "_again")
    dag_runner.run(transfer_dag(first_id, run_ids=run_ids, destination=str(folder)))

    again = dag_runner.run(transfer_dag(second_id, run_ids=run_ids, destination=str(folder)))

    assert again.state == "success", dag_runner.task_states(again)
    first = complete_event(openlineage_events, first_id, "transfer")
    second = complete_event(openlineage_events, second_id, "transfer")
    assert datasets(second, "outputs") == datasets(first, "outputs")
    assert datasets(second, "inputs") == datasets(first, "inputs")


def test_a_failed_transfer_reports_the_files_it_delivered(
    dag_runner, request, camb_emulator, tmp_path, openlineage_events
):
    good, bad = camb_emulator.add_tts_runs(2)
    urls = {str(good): camb_emulator.download_url(good), str(bad): camb_emulator.download_url(bad)}
    urls[str(bad)] = urls[str(bad)].replace(f"/{bad}.flac", "/999999.flac")  # refused by the host
    camb_emulator.fail_next("tts_result", 10, status=503)  # and the API cannot refresh it
    folder = tmp_path / "audio"
    dag_id = dag_id_for(request)

    dag_run = dag_runner.run(transfer_dag(dag_id, urls=urls, destination=str(folder)))

    assert dag_run.state == "failed"
    found = openlineage_events(f"{dag_id}.transfer")
    assert [event["eventType"] for event in found] == ["START", "FAIL"]
    assert datasets(found[-1], "outputs") == [("file", f"{folder}/{good}.flac")]
    assert "signature" not in json.dumps(found).lower()


# -- text to speech --------------------------------------------------------------------------------


def test_text_to_speech_reports_the_api_endpoint_and_the_local_files(
    dag_runner, request, camb_emulator, tmp_path, openlineage_events
):
    folder = tmp_path / "speech"
    dag_id = dag_id_for(request)

    dag_run = dag_runner.run(tts_dag(dag_id, texts=TEXTS, destination=str(folder)))

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    event = complete_event(openlineage_events, dag_id, "speak")
    assert datasets(event, "inputs") == [(camb_emulator.server_url, "/apis/tts-stream")]
    assert datasets(event, "outputs") == [
        ("file", f"{folder}/chapter-1.flac"),
        ("file", f"{folder}/chapter-2.flac"),
    ]


def test_text_to_speech_to_s3_reports_the_bucket_and_keys(
    dag_runner, request, camb_emulator, s3_destination, openlineage_events
):
    bucket, destination, conn_id = s3_destination
    dag_id = dag_id_for(request)

    dag_run = dag_runner.run(
        tts_dag(dag_id, texts=TEXTS, destination=destination, destination_conn_id=conn_id)
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    event = complete_event(openlineage_events, dag_id, "speak")
    assert datasets(event, "inputs") == [(camb_emulator.server_url, "/apis/tts-stream")]
    assert datasets(event, "outputs") == [
        (f"s3://{bucket}", "tts/audio/chapter-1.flac"),
        (f"s3://{bucket}", "tts/audio/chapter-2.flac"),
    ]


# -- naming, without running a cloud ---------------------------------------------------------------


def test_gcs_paths_are_named_by_bucket_and_object_key():
    from airflow.sdk import ObjectStoragePath

    for scheme in ("gs", "gcs"):
        path = ObjectStoragePath(f"{scheme}://voices/tts/audio/1001.flac")
        assert storage_dataset(path) == ("gs://voices", "tts/audio/1001.flac")


def test_azure_paths_are_named_by_container_and_the_connections_account(monkeypatch):
    from airflow.sdk import ObjectStoragePath

    # A connection string names the account; building the filesystem makes no network call.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AZURE_LINEAGE",
        json.dumps(
            {
                "conn_type": "wasb",
                "extra": {
                    "connection_string": "DefaultEndpointsProtocol=https;AccountName=voicestore;"
                    "AccountKey=a2V5;EndpointSuffix=core.windows.net"
                },
            }
        ),
    )
    path = ObjectStoragePath("abfs://audio/tts/1001.flac", conn_id="azure_lineage")

    assert storage_dataset(path) == ("abfss://audio@voicestore.dfs.core.windows.net", "tts/1001.flac")


def test_local_paths_are_absolute_and_urls_lose_credentials_and_query():
    from airflow.sdk import ObjectStoragePath

    assert storage_dataset(ObjectStoragePath("file:///data/tts/1001.flac")) == ("file", "/data/tts/1001.flac")
    assert url_dataset("https://user:pw@files.example.com:8443/a/1001.flac?X-Amz-Signature=abc#x") == (
        "https://files.example.com:8443",
        "/a/1001.flac",
    )


# -- without the OpenLineage provider ---------------------------------------------------------------


@pytest.mark.parametrize("operator_kind", ["transfer", "text_to_speech"])
def test_without_the_openlineage_provider_the_operators_report_nothing_and_still_work(
    camb_emulator, tmp_path, operator_kind
):
    from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator
    from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator

    operator: Any
    if operator_kind == "transfer":
        operator = CambTTSToStorageOperator(
            task_id="t", destination=str(tmp_path), run_ids=camb_emulator.add_tts_runs(1)
        )
    else:
        operator = CambTextToSpeechOperator(
            task_id="t", destination=str(tmp_path), texts=TEXTS, voice_id=20298
        )
    operator.execute({"ti": mock.MagicMock()})
    assert operator.get_openlineage_facets_on_complete(mock.MagicMock()) is not None

    # A None entry in sys.modules makes the import fail, as when the package is not installed.
    with mock.patch.dict(sys.modules, {"airflow.providers.openlineage.extractors": None}):
        assert operator.get_openlineage_facets_on_complete(mock.MagicMock()) is None
