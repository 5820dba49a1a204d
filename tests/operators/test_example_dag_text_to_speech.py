"""The text-to-speech example DAGs: they parse cleanly, and a folder of chapters becomes audio for real."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_camb.speech.segments import split_text
from tests.airflow_support import load_example_dag
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner

EXAMPLE = REPO_ROOT / "example_dags" / "example_camb_text_to_speech.py"
DAG_ID = "example_camb_text_to_speech"
MAPPED_DAG_ID = "example_camb_text_to_speech_mapped"
# Small, so a chapter of thousands of characters is a few seconds of audio.
SECONDS_PER_CHAR = 0.002
# The emulator's rate for the default model.
SAMPLE_RATE = 22050
XCOM_FIELDS = {"uri", "bytes", "duration_seconds", "segments", "characters", "credits"}


def _chapter(number: int, sentences: int) -> str:
    paragraphs = []
    for paragraph in range(0, sentences, 6):
        paragraphs.append(
            " ".join(
                f"In chapter {number}, sentence {index + 1} tells what the lighthouse keeper saw that night."
                for index in range(paragraph, min(paragraph + 6, sentences))
            )
        )
    return "\n\n".join(paragraphs) + "\n"


# A short chapter, one just under the API's limit, and one that needs three segments.
CHAPTERS = {"chapter-01": _chapter(1, 4), "chapter-02": _chapter(2, 39), "chapter-03": _chapter(3, 80)}


def _load(dag_id: str) -> Any:
    """A DAG of the example file, as the DAG processor parses it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def _expected_frames(text: str) -> int:
    # The emulator's audio lasts len(text) * seconds_per_char, per request: one per segment.
    return sum(max(1, round(len(piece) * SECONDS_PER_CHAR * SAMPLE_RATE)) for piece in split_text(text))


@pytest.fixture
def chapters(tmp_path: Path) -> Path:
    folder = tmp_path / "chapters"
    folder.mkdir()
    for name, text in CHAPTERS.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / "notes.md").write_text("Not a chapter: only *.txt files are read.")
    return folder


@pytest.fixture
def emulator(camb_emulator: CambEmulator) -> CambEmulator:
    camb_emulator.stream_seconds_per_char = SECONDS_PER_CHAR
    return camb_emulator


def _conf(chapters: Path, destination: Path, **extra: Any) -> dict[str, Any]:
    return {"source": chapters.as_uri() + "/", "destination": destination.as_uri() + "/", **extra}


def test_the_chapter_lengths_exercise_one_and_many_segments():
    assert [len(split_text(text)) for text in CHAPTERS.values()] == [1, 1, 3]
    assert 2900 < len(CHAPTERS["chapter-02"].strip()) <= 3000


def test_both_example_dags_import_without_errors_or_warnings(recwarn):
    dag = load_example_dag(DAG_ID)
    mapped = _load(MAPPED_DAG_ID)

    for each in (dag, mapped):
        assert each.schedule is None
        assert each.doc_md
        assert dict(each.params) == {
            "source": "file:///tmp/camb-chapters/",
            "destination": "file:///tmp/camb-audio-book/",
            "destination_conn_id": None,
            "voice_id": 20298,
            "language": "en-us",
            "output_format": "flac",
        }
    assert sorted(dag.task_ids) == ["read_chapters", "synthesise"]
    assert sorted(mapped.task_ids) == ["read_chapters_one_by_one", "synthesise_chapter"]
    assert not [w for w in recwarn if issubclass(w.category, (DeprecationWarning, FutureWarning))]


def test_example_dag_code_sits_between_its_doc_markers():
    text = EXAMPLE.read_text()
    for marker in ("howto_operator_camb_text_to_speech", "howto_operator_camb_text_to_speech_mapped"):
        start, end = f"# [START {marker}]", f"# [END {marker}]"
        assert text.count(start) == text.count(end) == 1
        assert text.index(start) < text.index(end)


@pytest.mark.parametrize("output_format", ["flac", "wav"])
def test_example_dag_speaks_each_chapter_into_one_file(
    dag_runner: DagRunner, emulator: CambEmulator, chapters: Path, tmp_path: Path, output_format: str
):
    import soundfile

    audio = tmp_path / "audio"

    dag_run = dag_runner.run(
        load_example_dag(DAG_ID), run_conf=_conf(chapters, audio, output_format=output_format)
    )

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "read_chapters") == CHAPTERS
    result = dag_runner.xcom(dag_run, "synthesise")
    assert list(result) == list(CHAPTERS)
    assert sorted(path.name for path in audio.iterdir()) == [f"{name}.{output_format}" for name in CHAPTERS]
    for name, text in CHAPTERS.items():
        path = audio / f"{name}.{output_format}"
        info = soundfile.info(str(path))
        pieces = split_text(text)
        assert info.format == output_format.upper()
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert info.frames == _expected_frames(text)
        assert result[name] == {
            "uri": f"file://{path}",
            "bytes": path.stat().st_size,
            "duration_seconds": round(info.frames / SAMPLE_RATE, 3),
            "segments": len(pieces),
            # Characters sent (and billed): the segments, whitespace runs collapsed.
            "characters": sum(len(piece) for piece in pieces),
            # The emulator charges one credit per character sent.
            "credits": sum(len(piece) for piece in pieces),
        }
    sent = emulator.requests("tts_stream")
    assert len(sent) == sum(len(split_text(text)) for text in CHAPTERS.values())
    assert {(entry.status, entry.json["voice_id"], entry.json["language"]) for entry in sent} == {
        (200, 20298, "en-us")
    }
    assert {entry.json["output_configuration"]["format"] for entry in sent} == {output_format}
    # Staged segments are dropped once their file is written.
    assert not (audio / ".camb-staging").exists()


def test_example_dag_rerun_over_finished_files_makes_no_api_call(
    dag_runner: DagRunner, emulator: CambEmulator, chapters: Path, tmp_path: Path
):
    audio = tmp_path / "audio"
    conf = _conf(chapters, audio)
    first = dag_runner.run(load_example_dag(DAG_ID), run_conf=conf)
    assert first.state == "success", dag_runner.task_states(first)
    written = dag_runner.xcom(first, "synthesise")
    contents = {path.name: path.read_bytes() for path in audio.iterdir()}
    emulator.clear_journal()

    again = dag_runner.run(load_example_dag(DAG_ID), run_conf=conf)

    assert again.state == "success", dag_runner.task_states(again)
    assert emulator.requests("tts_stream") == []
    assert {path.name: path.read_bytes() for path in audio.iterdir()} == contents
    kept = dag_runner.xcom(again, "synthesise")
    assert kept == {name: {**entry, "credits": None} for name, entry in written.items()}


def test_example_dag_stores_a_long_chapter_as_one_mp3(
    dag_runner: DagRunner, emulator: CambEmulator, chapters: Path, tmp_path: Path
):
    import soundfile

    audio = tmp_path / "audio"

    dag_run = dag_runner.run(load_example_dag(DAG_ID), run_conf=_conf(chapters, audio, output_format="mp3"))

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    result = dag_runner.xcom(dag_run, "synthesise")
    for name, text in CHAPTERS.items():
        info = soundfile.info(str(audio / f"{name}.mp3"))
        assert info.format == "MP3"
        assert result[name]["segments"] == len(split_text(text))
        # MP3 frames are padded by the encoder: compare durations, not sample counts.
        assert info.duration == pytest.approx(_expected_frames(text) / SAMPLE_RATE, abs=0.1)
    # The three-segment chapter is synthesised as FLAC and encoded to MP3 once; the others
    # are one request each, stored as the API sent them.
    formats = [entry.json["output_configuration"]["format"] for entry in emulator.requests("tts_stream")]
    assert sorted(formats) == ["flac", "flac", "flac", "mp3", "mp3"]


def test_mapped_example_dag_speaks_one_chapter_per_task_instance(
    dag_runner: DagRunner, emulator: CambEmulator, chapters: Path, tmp_path: Path
):
    import soundfile

    audio = tmp_path / "audio"

    dag_run = dag_runner.run(_load(MAPPED_DAG_ID), run_conf=_conf(chapters, audio))

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "read_chapters_one_by_one") == [
        {name: text} for name, text in CHAPTERS.items()
    ]
    per_chapter = dag_runner.xcoms(dag_run, "synthesise_chapter")
    assert sorted(per_chapter) == [0, 1, 2]
    for index, (name, text) in enumerate(CHAPTERS.items()):
        path = audio / f"{name}.flac"
        (entry,) = per_chapter[index].items()
        assert entry[0] == name
        assert set(entry[1]) == XCOM_FIELDS
        assert entry[1]["uri"] == f"file://{path}"
        assert entry[1]["segments"] == len(split_text(text))
        assert soundfile.info(str(path)).frames == _expected_frames(text)
    assert len(emulator.requests("tts_stream")) == 5
    assert not (audio / ".camb-staging").exists()
