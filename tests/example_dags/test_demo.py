"""`make demo`, exactly as a newcomer runs it: the end-to-end DAG against the emulator, twice."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def run_demo(tmp_path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "demo.py"),
            "--airflow-home",
            str(tmp_path / "airflow_home"),
            "--output",
            str(tmp_path / "audio"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_demo_lands_a_dozen_playable_files_and_a_rerun_downloads_nothing(tmp_path):
    import soundfile

    first = run_demo(tmp_path)

    assert first.returncode == 0, first.stdout + first.stderr
    files = sorted((tmp_path / "audio").iterdir())
    assert [path.name for path in files] == [f"{run_id}.flac" for run_id in range(1001, 1013)]
    for chapter, path in enumerate(files):
        info = soundfile.info(str(path))
        assert info.format == "FLAC"
        assert abs(info.duration - (1.5 + 0.75 * chapter)) < 0.01
        assert f"{path.stat().st_size:,}" in first.stdout
    assert "12 audio files in" in first.stdout
    assert "3 bulk result calls), 12 downloads." in first.stdout
    airflow_log = (tmp_path / "airflow_home" / "demo-dag-run.log").read_text()
    for text in (first.stdout, first.stderr, airflow_log):
        assert "demo-api-key" not in text  # the API key
        assert "signature=" not in text  # signed URLs are logged without their query
    assert "Marking run <DagRun example_camb_tts_to_storage" in airflow_log

    again = run_demo(tmp_path)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 downloads." in again.stdout
    assert sorted((tmp_path / "audio").iterdir()) == files
