"""The translation and dubbing example DAGs, run for real (``dag.test()``) against the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.airflow_support import load_example_dag

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner


def test_the_translation_example_creates_waits_and_pushes_the_texts(
    dag_runner: DagRunner, camb_emulator: CambEmulator
):
    camb_emulator.default_pending_polls = 0
    batches = [["Welcome aboard.", "Next stop: the harbour."], ["Mind the gap."]]

    dag_run = dag_runner.run(
        load_example_dag("example_camb_translation"),
        run_conf={"batches": batches, "source_language": 1, "target_language": 54},
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    task_ids = dag_runner.xcom(dag_run, "create_translations")
    run_ids = [camb_emulator.run_id_for_task(task_id) for task_id in task_ids]
    translations = dag_runner.xcom(dag_run, "fetch_translations")
    assert list(translations) == [str(run_id) for run_id in run_ids]
    assert [len(texts) for texts in translations.values()] == [2, 1]
    assert all(isinstance(text, str) and text for texts in translations.values() for text in texts)
    creates = camb_emulator.requests("create_translation")
    assert [entry.json["texts"] for entry in creates] == batches  # each batch created once
    assert len(camb_emulator.requests("translation_results")) == 1  # two runs, one bulk call


def test_the_dubbing_example_creates_waits_and_fetches_every_result(
    dag_runner: DagRunner, camb_emulator: CambEmulator, tmp_path
):
    videos = [f"https://example.com/videos/{n}.mp4" for n in range(3)]

    dag_run = dag_runner.run(
        load_example_dag("example_camb_dubbing"),
        run_conf={
            "videos": videos,
            "source_language": 1,
            "target_language": 54,
            "destination": f"file://{tmp_path}/dubs/",
        },
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    results = dag_runner.xcom(dag_run, "fetch_dubs")
    assert len(results) == 3
    assert all(result["audio_url"].startswith(camb_emulator.server_url) for result in results.values())
    assert [entry.json["video_url"] for entry in camb_emulator.requests("create_dubbing")] == videos
    stored = dag_runner.xcom(dag_run, "store_dubs")
    assert sorted(p.name for p in (tmp_path / "dubs").iterdir()) == sorted(
        f"{run_id}_{field}.{ext}"
        for run_id in results
        for field, ext in (("audio_url", "flac"), ("video_url", "mp4"))
    )
    assert set(stored) == set(results)
    assert all(set(files) == {"audio_url", "video_url"} for files in stored.values())
