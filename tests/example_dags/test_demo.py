"""`make demo`, exactly as a newcomer runs it: the end-to-end DAGs against the emulator, twice."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from airflow_provider_camb.speech.segments import split_text
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

DEMO = REPO_ROOT / "scripts" / "demo.py"
LOGS = ("demo-dag-run.log", "demo-text-to-speech-run.log")


@dataclass
class DemoRun:
    """What one ``make demo`` printed, Airflow's logs of it, and the audio it left behind."""

    result: subprocess.CompletedProcess[str]
    logs: dict[str, str]
    audio: dict[str, bytes]


@dataclass
class TwoDemoRuns:
    home: Path
    output: Path
    first: DemoRun
    again: DemoRun


def demo_module() -> ModuleType:
    """``scripts/demo.py`` as a module, for its constants (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("camb_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_demo(home: Path, output: Path) -> DemoRun:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--airflow-home", str(home), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    logs = {name: (home / name).read_text() for name in LOGS if (home / name).exists()}
    audio = {
        str(path.relative_to(output)): path.read_bytes()
        for path in sorted(output.rglob("*"))
        if path.is_file() and path.suffix == ".flac"
    }
    return DemoRun(result, logs, audio)


@pytest.fixture(scope="module")
def demo_twice(tmp_path_factory: pytest.TempPathFactory) -> TwoDemoRuns:
    """The demo run twice into the same folders (about a minute: both tests share it)."""
    root = tmp_path_factory.mktemp("demo")
    home, output = root / "airflow_home", root / "audio"
    first = run_demo(home, output)
    assert first.result.returncode == 0, first.result.stdout + first.result.stderr
    again = run_demo(home, output)
    assert again.result.returncode == 0, again.result.stdout + again.result.stderr
    return TwoDemoRuns(home, output, first, again)


def test_demo_lands_a_dozen_playable_files_and_a_rerun_downloads_nothing(demo_twice: TwoDemoRuns):
    import soundfile

    first, again = demo_twice.first, demo_twice.again

    files = sorted(demo_twice.output.glob("*.flac"))
    assert [path.name for path in files] == [f"{run_id}.flac" for run_id in range(1001, 1013)]
    for chapter, path in enumerate(files):
        info = soundfile.info(str(path))
        assert info.format == "FLAC"
        assert abs(info.duration - (1.5 + 0.75 * chapter)) < 0.01
        assert f"{path.stat().st_size:,}" in first.result.stdout
    assert "12 audio files in" in first.result.stdout
    assert "3 bulk result calls), 12 downloads." in first.result.stdout
    airflow_log = first.logs["demo-dag-run.log"]
    for text in (first.result.stdout, first.result.stderr, airflow_log):
        assert "demo-api-key" not in text  # the API key
        assert "signature=" not in text  # signed URLs are logged without their query
    assert "Marking run <DagRun example_camb_tts_to_storage" in airflow_log

    assert "0 downloads." in again.result.stdout
    top_level = {name for name in first.audio if "/" not in name}
    assert top_level == {path.name for path in files}
    assert {name: again.audio[name] for name in top_level} == {name: first.audio[name] for name in top_level}


def test_demo_speaks_each_chapter_into_one_file_and_a_rerun_synthesises_nothing(demo_twice: TwoDemoRuns):
    import soundfile

    demo = demo_module()
    first, again = demo_twice.first, demo_twice.again
    chapters, audiobook = demo_twice.output / "chapters", demo_twice.output / "audiobook"

    texts = {path.stem: path.read_text(encoding="utf-8") for path in sorted(chapters.glob("*.txt"))}
    assert list(texts) == list(demo.CHAPTERS) == ["chapter-01", "chapter-02", "chapter-03", "chapter-04"]
    segments = {stem: split_text(text) for stem, text in texts.items()}
    # Chapters of different lengths, one of them too long for one request.
    assert [len(pieces) for pieces in segments.values()] == [1, 1, 2, 1]
    assert len({len(text) for text in texts.values()}) == len(texts)
    assert sum(map(len, texts.values())) < 15_000
    assert sorted(path.name for path in audiobook.iterdir()) == [f"{stem}.flac" for stem in texts]
    for stem, pieces in segments.items():
        path = audiobook / f"{stem}.flac"
        info = soundfile.info(str(path))
        assert info.format == "FLAC"
        # The emulator speaks len(text) * seconds_per_char per request: one request per segment.
        expected = sum(len(piece) * demo.STREAM_SECONDS_PER_CHAR for piece in pieces)
        assert abs(info.duration - expected) < 0.001 * len(pieces)
        assert f"{path.stat().st_size:,}" in first.result.stdout
    assert "4 chapter audio files in" in first.result.stdout
    characters = sum(len(piece) for pieces in segments.values() for piece in pieces)
    assert f"; 5 tts-stream calls ({characters:,} characters synthesised)." in first.result.stdout
    airflow_log = first.logs["demo-text-to-speech-run.log"]
    for text in (first.result.stdout, first.result.stderr, airflow_log):
        assert "demo-api-key" not in text
    assert "Marking run <DagRun example_camb_text_to_speech" in airflow_log
    # Finished files only: no staged segments left behind.
    assert not (audiobook / ".camb-staging").exists()

    assert "; 0 tts-stream calls (0 characters synthesised)." in again.result.stdout
    assert "every chapter's audio was already there" in again.result.stdout
    assert {name: data for name, data in again.audio.items() if name.startswith("audiobook/")} == {
        name: data for name, data in first.audio.items() if name.startswith("audiobook/")
    }
