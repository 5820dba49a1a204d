"""The nightly example under a real scheduler: back-fill, clear and re-run, the asset-scheduled DAG.

A deployment of its own (module scope) runs ``example_camb_nightly_audio`` and its manifest DAG,
configured through Airflow Variables in the environment, as a DAG author would.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.system.conftest import DeploymentLayout

if TYPE_CHECKING:
    from pathlib import Path

    from tests.system.conftest import SystemEmulator
    from tests.system.deployment import AirflowDeployment

pytestmark = pytest.mark.system

NIGHTLY, MANIFEST = "example_camb_nightly_audio", "example_camb_nightly_audio_manifest"
#: The back-filled nights and their texts (the night after the last has none).
NIGHTS = {
    "2026-11-10": {"news": "The harbour opens at dawn.", "weather": "Fog until noon, then sun."},
    "2026-11-11": {"news": "The ferry runs late tonight."},
    "2026-11-12": {"news": "Market day in the old square.", "sport": "The home side won at last."},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("nightly")
    texts, audio = root / "texts", root / "audio"
    for ds, night in NIGHTS.items():
        (texts / ds).mkdir(parents=True)
        for name, text in night.items():
            (texts / ds / f"{name}.txt").write_text(text, encoding="utf-8")
    audio.mkdir()
    return texts, audio


@pytest.fixture(scope="module")
def deployment_layout(folders: tuple[Path, Path]) -> DeploymentLayout:
    texts, audio = folders
    return DeploymentLayout(
        example_dags=("example_camb_nightly_audio.py",),
        dag_ids=(NIGHTLY, MANIFEST),
        probe_dags=False,
        env={
            "AIRFLOW_VAR_CAMB_NIGHTLY_SOURCE": texts.as_uri() + "/",
            "AIRFLOW_VAR_CAMB_NIGHTLY_DESTINATION": audio.as_uri() + "/",
        },
    )


def _runs(deployment: AirflowDeployment, dag_id: str) -> list[dict[str, Any]]:
    rows = deployment.query(
        "SELECT id, run_id, run_type, state, date(logical_date) AS ds FROM dag_run "
        "WHERE dag_id = ? ORDER BY id",
        dag_id,
    )
    return [dict(row) for row in rows]


def _asset_events(deployment: AirflowDeployment) -> list[dict[str, Any]]:
    """Every event of the nightly asset, with the manifest runs that consumed it."""
    rows = deployment.query(
        "SELECT e.id, e.source_run_id, e.extra, "
        "(SELECT group_concat(dr.run_id) FROM dagrun_asset_event x JOIN dag_run dr ON dr.id = x.dag_run_id "
        " WHERE x.event_id = e.id AND dr.dag_id = ?) AS consumed_by "
        "FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = 'camb_nightly_audio' ORDER BY e.id",
        MANIFEST,
    )
    return [
        {**dict(row), "extra": json.loads(row["extra"]), "consumed_by": (row["consumed_by"] or "").split(",")}
        for row in rows
    ]


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*.flac"))
    }


def _manifest(audio: Path, ds: str) -> list[dict[str, Any]] | None:
    path = audio / ds / "manifest.json"
    return json.loads(path.read_text())["files"] if path.exists() else None


def _finished(deployment: AirflowDeployment, dag_id: str, count: int) -> list[dict[str, Any]] | None:
    runs = _runs(deployment, dag_id)
    done = [run for run in runs if run["state"] in ("success", "failed")]
    return runs if len(runs) >= count and len(done) == len(runs) else None


@pytest.mark.timeout(420)
def test_a_backfill_lands_one_partition_per_night_and_a_rerun_makes_no_api_call(
    deployment: AirflowDeployment, camb: SystemEmulator, folders: tuple[Path, Path]
) -> None:
    camb.stream_seconds_per_char = 0.001
    _, audio = folders

    # 1. Unpaused with catchup=False, the scheduler runs the latest night at once. It has no
    # texts: it succeeds doing nothing, and sends no asset event.
    [latest] = deployment.wait_for(
        lambda: _finished(deployment, NIGHTLY, 1), timeout=120, what="the latest night's scheduled run"
    )
    assert (latest["run_type"], latest["state"]) == ("scheduled", "success")
    assert deployment.task_states(NIGHTLY, latest["run_id"]) == {
        "read_texts": "skipped",
        "synthesise": "skipped",
    }
    assert camb.requests("tts_stream") == []

    # 2. Back-fill three nights, one at a time.
    started = time.monotonic()
    deployment.cli(
        "backfill", "create", "--dag-id", NIGHTLY,
        "--from-date", "2026-11-10", "--to-date", "2026-11-12", "--max-active-runs", "1",
    )  # fmt: skip
    runs = deployment.wait_for(
        lambda: _finished(deployment, NIGHTLY, 4),
        timeout=240,
        what=lambda: f"the back-fill: {_runs(deployment, NIGHTLY)}",
    )
    backfilled = [run for run in runs if run["run_type"] == "backfill"]
    print(f"\n[system] back-fill of 3 nights finished in {time.monotonic() - started:.1f} s")
    assert [(run["ds"], run["state"]) for run in backfilled] == [(ds, "success") for ds in NIGHTS]
    # One partition per night, each holding that night's texts and nothing else.
    files = _tree(audio)
    assert sorted(files) == sorted(f"{ds}/{name}.flac" for ds, night in NIGHTS.items() for name in night)
    spoken = sorted(entry.json["text"] for entry in camb.requests("tts_stream"))
    assert spoken == sorted(text for night in NIGHTS.values() for text in night.values())

    # 3. The manifest DAG, scheduled on the asset, handled every night once.
    deployment.wait_for(
        lambda: all(_manifest(audio, ds) for ds in NIGHTS) and _finished(deployment, MANIFEST, 1),
        timeout=120,
        what=lambda: f"a manifest for every night: runs {_runs(deployment, MANIFEST)}",
    )
    events = _asset_events(deployment)
    assert [event["source_run_id"] for event in events] == [run["run_id"] for run in backfilled]
    for event in events:
        assert len(event["consumed_by"]) == 1, event
    for ds, night in NIGHTS.items():
        assert _manifest(audio, ds) == [
            {
                "name": name,
                "uri": (audio / ds / f"{name}.flac").as_uri(),
                "bytes": (audio / ds / f"{name}.flac").stat().st_size,
                "written": True,
            }
            for name in sorted(night)
        ]
    manifest_runs = _runs(deployment, MANIFEST)
    print(
        f"[system] manifest DAG runs for 3 nights: {len(manifest_runs)} "
        f"({[run['state'] for run in manifest_runs]})"
    )
    assert {run["state"] for run in manifest_runs} == {"success"}

    # 4. Clear one night and let the scheduler run it again: no API call, no file changed.
    camb.clear_journal()
    night = next(run for run in backfilled if run["ds"] == "2026-11-11")
    deployment.cli(
        "tasks", "clear", NIGHTLY, "--start-date", "2026-11-11", "--end-date", "2026-11-11", "--yes"
    )
    deployment.wait_for(
        lambda: (
            deployment.dag_run_state(NIGHTLY, night["run_id"]) == "success"
            and len(_asset_events(deployment)) == 4
        ),
        timeout=180,
        what=lambda: f"the cleared night to run again: {_runs(deployment, NIGHTLY)}",
    )
    assert camb.journal == []
    assert _tree(audio) == files
    # Its new asset event says the files were kept, and the manifest DAG took it, once.
    deployment.wait_for(
        lambda: _manifest(audio, "2026-11-11") and not _manifest(audio, "2026-11-11")[0]["written"],
        timeout=120,
        what="the manifest DAG to handle the re-run",
    )
    rerun_event = _asset_events(deployment)[-1]
    assert rerun_event["source_run_id"] == night["run_id"]
    assert [(f["name"], f["written"]) for f in rerun_event["extra"]["files"]] == [("news", False)]
    assert len(rerun_event["consumed_by"]) == 1
