"""The nightly examples under ``dag.test()``: each interval speaks its own partition, once.

The same DAGs run under a real scheduler (back-fill, clear and re-run, the asset-scheduled
manifest DAG) in ``tests/system/test_scheduled_pipelines.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pendulum
import pytest

from tests.airflow_support import load_example_dag

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner

NIGHTS = {
    "2026-11-02": {"news-0600": "Good morning. Here is the news at six.", "weather": "Sunny, then rain."},
    "2026-11-03": {"news-0600": "Good morning. The bridge reopens today."},
}


def _night(ds: str) -> pendulum.DateTime:
    # An @daily run with logical date D covers D to D+1: its {{ ds }} is D.
    return pendulum.parse(ds, tz="UTC")  # type: ignore[return-value]


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    texts, audio = tmp_path / "texts", tmp_path / "audio"
    for ds, night in NIGHTS.items():
        (texts / ds).mkdir(parents=True)
        for name, text in night.items():
            (texts / ds / f"{name}.txt").write_text(text, encoding="utf-8")
    # What a deployment sets as Airflow Variables; read when the run renders its templates.
    monkeypatch.setenv("AIRFLOW_VAR_CAMB_NIGHTLY_SOURCE", texts.as_uri())
    monkeypatch.setenv("AIRFLOW_VAR_CAMB_NIGHTLY_DESTINATION", audio.as_uri() + "/")
    return texts, audio


@pytest.fixture
def emulator(camb_emulator: CambEmulator) -> CambEmulator:
    camb_emulator.stream_seconds_per_char = 0.001
    return camb_emulator


def _tree(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _asset_extras(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        ).all()
        return [dict(event.extra) for event in events]


def test_a_night_speaks_its_own_texts_into_its_own_partition_and_announces_them(
    dag_runner: DagRunner, emulator: CambEmulator, folders: tuple[Path, Path]
):
    _, audio = folders

    run = dag_runner.run(load_example_dag("example_camb_nightly_audio"), logical_date=_night("2026-11-02"))

    assert run.state == "success", dag_runner.task_states(run)
    # Only this night's folder; the next night's texts are not touched.
    assert sorted(_tree(audio)) == ["2026-11-02/news-0600.flac", "2026-11-02/weather.flac"]
    assert sorted(entry.json["text"] for entry in emulator.requests("tts_stream")) == sorted(
        NIGHTS["2026-11-02"].values()
    )
    result = dag_runner.xcom(run, "synthesise")
    assert {name: entry["uri"] for name, entry in result.items()} == {
        name: (audio / "2026-11-02" / f"{name}.flac").as_uri() for name in NIGHTS["2026-11-02"]
    }
    # The asset event tells a downstream DAG which files the night has.
    [extra] = _asset_extras("example_camb_nightly_audio", run.run_id)
    assert extra["files"] == [
        {
            "name": name,
            "uri": (audio / "2026-11-02" / f"{name}.flac").as_uri(),
            "bytes": (audio / "2026-11-02" / f"{name}.flac").stat().st_size,
            "written": True,
        }
        for name in sorted(NIGHTS["2026-11-02"])
    ]


def test_re_running_a_night_makes_no_api_call_and_changes_no_file(
    dag_runner: DagRunner, emulator: CambEmulator, folders: tuple[Path, Path]
):
    _, audio = folders
    dag = load_example_dag("example_camb_nightly_audio")
    for ds in NIGHTS:
        assert dag_runner.run(dag, logical_date=_night(ds)).state == "success"
    before = _tree(audio)
    mtimes = {path: path.stat().st_mtime_ns for path in audio.rglob("*.flac")}
    emulator.clear_journal()

    again = dag_runner.run(load_example_dag("example_camb_nightly_audio"), logical_date=_night("2026-11-02"))

    assert again.state == "success", dag_runner.task_states(again)
    assert emulator.journal == []
    assert _tree(audio) == before
    assert {path: path.stat().st_mtime_ns for path in audio.rglob("*.flac")} == mtimes
    [extra] = _asset_extras("example_camb_nightly_audio", again.run_id)
    assert [(file["name"], file["written"]) for file in extra["files"]] == [
        ("news-0600", False),
        ("weather", False),
    ]


def test_a_night_without_texts_succeeds_doing_nothing(
    dag_runner: DagRunner, emulator: CambEmulator, folders: tuple[Path, Path]
):
    _, audio = folders

    run = dag_runner.run(load_example_dag("example_camb_nightly_audio"), logical_date=_night("2026-11-05"))

    assert run.state == "success"
    assert dag_runner.task_states(run) == {"read_texts": "skipped", "synthesise": "skipped"}
    assert emulator.journal == []
    assert _tree(audio) == {}
    # No asset event: the manifest DAG has nothing to do for an empty night.
    assert _asset_extras("example_camb_nightly_audio", run.run_id) == []


def test_the_legacy_night_fetches_its_listed_tasks_into_its_partition(
    dag_runner: DagRunner, emulator: CambEmulator, folders: tuple[Path, Path]
):
    texts, audio = folders
    task_ids = emulator.add_tts_tasks(3)
    (texts / "2026-11-02" / "camb_task_ids.json").write_text(json.dumps(task_ids))
    dag = load_example_dag("example_camb_nightly_audio_legacy")

    first = dag_runner.run(dag, logical_date=_night("2026-11-02"))
    empty = dag_runner.run(dag, logical_date=_night("2026-11-03"))

    assert first.state == "success", dag_runner.task_states(first)
    stored = dag_runner.xcom(first, "store_audio")
    assert len(stored) == 3
    assert sorted(_tree(audio)) == sorted(uri.split("/audio/", 1)[1] for uri in stored.values())
    assert {uri.rsplit("/", 2)[1] for uri in stored.values()} == {"2026-11-02"}
    [extra] = _asset_extras("example_camb_nightly_audio_legacy", first.run_id)
    assert [file["name"] for file in extra["files"]] == sorted(stored)
    assert empty.state == "success"
    assert dag_runner.task_states(empty)["read_task_ids"] == "skipped"

    # A re-run checks statuses and URLs again, and each file's size with a 1-byte ranged GET,
    # but downloads nothing and synthesises nothing.
    before = _tree(audio)
    emulator.clear_journal()
    again = dag_runner.run(dag, logical_date=_night("2026-11-02"))
    assert again.state == "success", dag_runner.task_states(again)
    assert _tree(audio) == before
    calls = emulator.journal
    assert {entry.endpoint for entry in calls} <= {"tts_status", "tts_results", "download"}
    assert {entry.range for entry in calls if entry.endpoint == "download"} <= {"bytes=0-0"}
