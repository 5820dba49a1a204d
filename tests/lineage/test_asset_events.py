"""Asset outlets for real: ``dag.test()`` runs of both operators, the asset events read back from the
metadata DB, as a DAG scheduled on the asset would receive them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from airflow_provider_camb.testing.pytest_plugin import FIXTURE_API_KEY
from airflow_provider_camb.utils.xcom_keys import FILE_SIZES
from tests.lineage.conftest import dag_id_for, transfer_dag, tts_dag

TEXTS = {"intro": "Welcome to the show.", "chapter-1": "The first chapter, read aloud."}


def asset_events(uri: str) -> list[dict[str, Any]]:
    """Every event of the asset, oldest first: its source and its extra."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
        return [
            {"dag_id": row.source_dag_id, "run_id": row.source_run_id, "extra": row.extra} for row in rows
        ]


def register(dag: Any) -> None:
    """Serialise a DAG into the DB without running it, as the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def assert_no_secrets(extra: Any) -> None:
    text = json.dumps(extra)
    assert FIXTURE_API_KEY not in text
    assert "signature" not in text.lower() and "?" not in text  # no signed URL
    assert "aws_lineage_moto" not in text  # no connection ID in the URIs


# -- the transfer ----------------------------------------------------------------------------------


def test_a_transfer_lists_every_file_written_then_every_file_kept_on_a_rerun(
    dag_runner, request, camb_emulator, tmp_path
):
    from airflow.sdk import Asset

    asset = Asset(uri=f"file://{tmp_path}/audio")
    run_ids = camb_emulator.add_tts_runs(3)
    dag = transfer_dag(
        dag_id_for(request), run_ids=run_ids, destination=str(tmp_path / "audio"), outlets=[asset]
    )

    first = dag_runner.run(dag)
    second = dag_runner.run(dag)  # the same DAG again, over the same folder

    assert (first.state, second.state) == ("success", "success")
    uris, sizes = dag_runner.xcom(first, "transfer"), dag_runner.xcom(first, "transfer", FILE_SIZES)
    expected = [
        {"name": str(run_id), "uri": uris[str(run_id)], "bytes": sizes[str(run_id)]} for run_id in run_ids
    ]
    events = asset_events(asset.uri)
    assert [(event["dag_id"], event["run_id"]) for event in events] == [
        (dag.dag_id, first.run_id),
        (dag.dag_id, second.run_id),
    ]
    assert events[0]["extra"] == {"files": [{**item, "written": True} for item in expected]}
    assert events[1]["extra"] == {"files": [{**item, "written": False} for item in expected]}
    assert uris == dag_runner.xcom(second, "transfer")  # the second run delivered the same files
    assert_no_secrets(events)


def test_the_files_of_a_transfer_to_s3_are_named_by_their_s3_uris(
    dag_runner, request, camb_emulator, s3_destination
):
    from airflow.sdk import Asset

    bucket, destination, conn_id = s3_destination
    asset = Asset(uri=f"s3://{bucket}/tts/audio")
    run_ids = sorted(camb_emulator.add_tts_runs(2))
    dag_run = dag_runner.run(
        transfer_dag(
            dag_id_for(request),
            run_ids=run_ids,
            destination=destination,
            destination_conn_id=conn_id,
            outlets=[asset],
        )
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    (event,) = asset_events(asset.uri)
    assert [item["uri"] for item in event["extra"]["files"]] == [
        f"s3://{bucket}/tts/audio/{run_id}.flac" for run_id in run_ids
    ]
    assert [item["bytes"] for item in event["extra"]["files"]] == [
        camb_emulator.audio_size(run_id) for run_id in run_ids
    ]
    assert_no_secrets(event)


def test_results_with_several_files_are_named_run_id_slash_field(
    dag_runner, request, camb_emulator, tmp_path
):
    from airflow.sdk import Asset

    asset = Asset(uri=f"file://{tmp_path}/dubbed")
    (run_id,) = camb_emulator.add_runs("dubbing", 1, size_bytes=10_000)
    dag_run = dag_runner.run(
        transfer_dag(
            dag_id_for(request),
            run_ids=[run_id],
            result_kind="dubbing",
            destination=str(tmp_path / "dubbed"),
            outlets=[asset],
        )
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    (event,) = asset_events(asset.uri)
    uris = dag_runner.xcom(dag_run, "transfer")[str(run_id)]
    assert [(item["name"], item["uri"]) for item in event["extra"]["files"]] == [
        (f"{run_id}/audio_url", uris["audio_url"]),
        (f"{run_id}/video_url", uris["video_url"]),
    ]


# -- text to speech --------------------------------------------------------------------------------


def test_text_to_speech_lists_every_text_written_then_kept(dag_runner, request, camb_emulator, tmp_path):
    from airflow.sdk import Asset

    asset = Asset(uri=f"file://{tmp_path}/speech")
    dag = tts_dag(dag_id_for(request), texts=TEXTS, destination=str(tmp_path / "speech"), outlets=[asset])

    first = dag_runner.run(dag)
    calls = len(camb_emulator.requests("tts_stream"))
    second = dag_runner.run(dag)

    assert (first.state, second.state) == ("success", "success")
    assert len(camb_emulator.requests("tts_stream")) == calls  # the re-run synthesised nothing
    result = dag_runner.xcom(first, "speak")
    expected = [  # sorted by name
        {"name": name, "uri": result[name]["uri"], "bytes": result[name]["bytes"]}
        for name in ("chapter-1", "intro")
    ]
    first_event, second_event = asset_events(asset.uri)
    assert first_event["extra"] == {"files": [{**item, "written": True} for item in expected]}
    assert second_event["extra"] == {"files": [{**item, "written": False} for item in expected]}
    assert expected[0]["bytes"] == (tmp_path / "speech" / "chapter-1.flac").stat().st_size
    assert_no_secrets([first_event, second_event])


# -- downstream ------------------------------------------------------------------------------------


def test_a_dag_scheduled_on_the_asset_is_queued_with_the_files(dag_runner, request, camb_emulator, tmp_path):
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.sdk import DAG, Asset, task
    from airflow.utils.session import create_session
    from sqlalchemy import select

    asset = Asset(uri=f"file://{tmp_path}/speech")
    with DAG(
        dag_id=dag_id_for(request, "_downstream"),
        schedule=[asset],
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        is_paused_upon_creation=False,
    ) as downstream:

        @task
        def publish(triggering_asset_events: Any = None) -> None:
            pass

        publish()
    register(downstream)

    dag_run = dag_runner.run(
        tts_dag(dag_id_for(request), texts=TEXTS, destination=str(tmp_path / "speech"), outlets=[asset])
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    with create_session() as session:
        queued = session.execute(
            select(AssetDagRunQueue.target_dag_id, AssetModel.uri).join(
                AssetModel, AssetModel.id == AssetDagRunQueue.asset_id
            )
        ).all()
    assert (downstream.dag_id, asset.uri) in queued
    # What the downstream run's ``triggering_asset_events[asset]`` will hold.
    (event,) = asset_events(asset.uri)
    assert [item["name"] for item in event["extra"]["files"]] == ["chapter-1", "intro"]


# -- other outlets ---------------------------------------------------------------------------------


def test_alias_outlets_get_no_event_and_do_not_break_the_run(dag_runner, request, camb_emulator, tmp_path):
    from airflow.models.asset import AssetAliasModel
    from airflow.sdk import Asset, AssetAlias
    from airflow.utils.session import create_session
    from sqlalchemy import select

    alias = AssetAlias(dag_id_for(request, "_alias"))
    asset = Asset(uri=f"file://{tmp_path}/audio")
    run_ids = camb_emulator.add_tts_runs(1)
    dag_run = dag_runner.run(
        transfer_dag(
            dag_id_for(request),
            run_ids=run_ids,
            destination=str(tmp_path / "audio"),
            outlets=[alias, asset],
        )
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    with create_session() as session:
        alias_model = session.scalars(select(AssetAliasModel).where(AssetAliasModel.name == alias.name)).one()
        assert list(alias_model.asset_events) == []  # nothing was added through the alias
    (event,) = asset_events(asset.uri)
    assert [item["name"] for item in event["extra"]["files"]] == [str(run_ids[0])]


def test_a_task_without_asset_outlets_runs_as_before(dag_runner, request, camb_emulator, tmp_path):
    dag_run = dag_runner.run(
        tts_dag(dag_id_for(request), texts=TEXTS, destination=str(tmp_path / "speech"), outlets=[])
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert asset_events(f"file://{tmp_path}/speech") == []
