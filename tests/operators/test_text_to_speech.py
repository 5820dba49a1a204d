"""CambTextToSpeechOperator against the emulator over real HTTP: files, costs, re-runs, faults, input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import soundfile
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_camb.operators.text_to_speech import STAGING_FOLDER, CambTextToSpeechOperator
from airflow_provider_camb.speech.segments import split_text

SECONDS_PER_CHAR = 0.002
VOICE = 20298


def book(sentences: int, seed: int = 0) -> str:
    """English-like prose of short sentences in paragraphs (about 60 characters a sentence)."""
    words = ["river", "lantern", "morning", "quietly", "harbour", "stone", "letter", "garden", "north"]
    out = []
    for i in range(sentences):
        sentence = " ".join(words[(seed + i * 7 + j) % len(words)] for j in range(4 + i % 6))
        out.append(f"Sentence {i} of the {sentence}.")
        if i % 9 == 8:
            out.append("\n\n")
    return " ".join(out)


@pytest.fixture
def emu(camb_emulator: Any) -> Any:
    camb_emulator.stream_seconds_per_char = SECONDS_PER_CHAR
    return camb_emulator


def operator(destination: Path | str, texts: Any, **kwargs: Any) -> CambTextToSpeechOperator:
    return CambTextToSpeechOperator(
        task_id="speak",
        texts=texts,
        voice_id=kwargs.pop("voice_id", VOICE),
        destination=str(destination),
        **kwargs,
    )


def run(op: CambTextToSpeechOperator) -> Any:
    return op.execute({"ti": mock.MagicMock()})  # type: ignore[arg-type]


def listing(folder: Path) -> list[str]:
    """Every file under ``folder``, staging included, as relative paths."""
    return (
        sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if folder.exists()
        else []
    )


def final_files(folder: Path) -> list[str]:
    return [name for name in listing(folder) if not name.startswith(STAGING_FOLDER)]


def staged_files(folder: Path) -> list[str]:
    return [name for name in listing(folder) if name.startswith(STAGING_FOLDER)]


# -- long text, one file -------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["flac", "wav", "mp3"])
def test_a_long_text_becomes_one_decodable_file_as_long_as_its_segments(emu, tmp_path, output_format):
    text = book(160)  # ~9,000 characters: four segments
    segments = split_text(text)
    assert len(segments) >= 3

    result = run(operator(tmp_path, {"chapter-1": text}, output_format=output_format))

    path = tmp_path / f"chapter-1.{output_format}"
    info = soundfile.info(str(path))
    assert info.format == {"flac": "FLAC", "wav": "WAV", "mp3": "MP3"}[output_format]
    expected_seconds = sum(len(segment) for segment in segments) * SECONDS_PER_CHAR
    assert info.duration == pytest.approx(expected_seconds, abs=0.002)
    assert result == {
        "chapter-1": {
            "uri": f"file://{path}",
            "bytes": path.stat().st_size,
            "duration_seconds": pytest.approx(expected_seconds, abs=0.002),
            "segments": len(segments),
            "characters": sum(len(segment) for segment in segments),  # what is sent and billed
            "credits": float(sum(len(segment) for segment in segments)),
        }
    }
    calls = emu.requests("tts_stream")
    assert sorted(call.json["text"] for call in calls) == sorted(segments)
    # A lossy file is synthesised losslessly and encoded once; lossless formats are asked as such.
    asked = {call.json["output_configuration"]["format"] for call in calls}
    assert asked == ({"flac"} if output_format == "mp3" else {output_format})
    assert final_files(tmp_path) == [f"chapter-1.{output_format}"]
    assert staged_files(tmp_path) == []  # staging removed once the file is written


def test_lossless_joins_are_sample_exact_concatenations(emu, tmp_path):
    text = book(120)
    run(operator(tmp_path / "joined", {"book": text}, output_format="wav"))
    pieces = []
    for index, segment in enumerate(split_text(text)):
        run(operator(tmp_path / "pieces", {f"p{index}": segment}, output_format="wav"))
        pieces.append(soundfile.read(str(tmp_path / "pieces" / f"p{index}.wav"), dtype="int16")[0])

    joined, _ = soundfile.read(str(tmp_path / "joined" / "book.wav"), dtype="int16")

    import numpy

    assert numpy.array_equal(joined, numpy.concatenate(pieces))  # no gap, no click, no header inside


def test_a_short_text_in_mp3_is_stored_as_the_api_sent_it(emu, tmp_path):
    run(operator(tmp_path, "Hello there, listener.", output_format="mp3", name="greeting"))
    (call,) = emu.requests("tts_stream")
    assert call.json["output_configuration"]["format"] == "mp3"
    assert soundfile.info(str(tmp_path / "greeting.mp3")).format == "MP3"


def test_segments_of_all_texts_share_one_concurrency_budget(emu, tmp_path):
    emu.add_latency("tts_stream", 0.2)
    texts = {f"t{i}": book(60, seed=i) for i in range(3)}  # two segments each: six calls

    run(operator(tmp_path, texts, max_concurrency=3))

    calls = sorted(call.time for call in emu.requests("tts_stream"))
    assert len(calls) == 6
    # Three start together, the next three only when the first ones are done.
    assert calls[2] - calls[0] < 0.15
    assert calls[3] - calls[0] >= 0.18


# -- cost, re-runs -------------------------------------------------------------------------------


def test_a_re_run_over_finished_files_makes_no_api_call(emu, tmp_path):
    texts = {"a": book(80), "b": "A short one."}
    first = run(operator(tmp_path, texts))
    emu.clear_journal()

    again = run(operator(tmp_path, texts))

    assert emu.journal == []
    assert {name: item["uri"] for name, item in again.items()} == {
        name: item["uri"] for name, item in first.items()
    }
    assert again["a"]["duration_seconds"] == pytest.approx(first["a"]["duration_seconds"])
    assert again["a"]["credits"] is None  # nothing was paid this time


def test_overwrite_synthesises_again(emu, tmp_path):
    text = book(80)
    run(operator(tmp_path, {"a": text}))
    emu.clear_journal()

    run(operator(tmp_path, {"a": text}, overwrite=True))

    assert len(emu.requests("tts_stream")) == len(split_text(text))


def test_max_characters_fails_before_any_request_and_counts_only_what_would_be_made(emu, tmp_path):
    # Billed characters: the segments as sent, whitespace runs collapsed and ends trimmed.
    with pytest.raises(AirflowFailException, match=r"11,998 characters, more than max_characters=10,000"):
        run(operator(tmp_path, {"a": "x" * 6000, "b": "y " * 3000}, max_characters=10_000))
    assert emu.journal == []

    run(operator(tmp_path, {"a": "Already here."}))
    emu.clear_journal()
    # "a" exists and costs nothing, so only "b" counts against the budget.
    run(operator(tmp_path, {"a": "Already here.", "b": "Twelve chars"}, max_characters=12))
    assert [call.json["text"] for call in emu.requests("tts_stream")] == ["Twelve chars"]


def test_costs_are_logged_per_file_and_in_total_and_texts_only_shortened(emu, tmp_path, logs):
    secret_sentence = "The vault combination is seven three nine one and nobody must read it in a log."
    run(operator(tmp_path, {"a": secret_sentence + " " + book(70), "b": "Short text."}))
    text = logs()
    assert "'a': " in text and "credits" in text
    assert "Done: 2 file(s)" in text
    assert secret_sentence not in text
    assert "test-api-key" not in text


# -- bad input, before any request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texts": {}}, "texts is empty"),
        ({"texts": {"a": "   \n "}}, "text 'a' is empty or only whitespace"),
        ({"texts": {"a": "Hi"}}, "text 'a' has 2 characters; Camb.ai needs at least 3"),
        ({"texts": {"a": 42}}, "text 'a' must be a string"),
        ({"voice_id": 0}, "voice_id must be a positive whole number"),
        ({"voice_id": -3}, "voice_id must be a positive whole number"),
        ({"voice_id": True}, "voice_id must be a positive whole number"),
        ({"voice_id": 2.5}, "voice_id must be a positive whole number"),
        ({"voice_id": "ava"}, "voice_id must be a positive whole number"),
        ({"language": ""}, "language must be a BCP-47 tag"),
        ({"language": "english!"}, "language must be a BCP-47 tag"),
        ({"language": "en_US"}, "(use '-', not '_')"),
        ({"output_format": "ogg"}, "output_format must be one of flac, wav, mp3, got 'ogg'"),
        ({"speech_model": "mars-9"}, "speech_model must be one of"),
        (
            {"user_instructions": "Speak slowly."},
            "user_instructions only work with speech_model='mars-instruct'",
        ),
        ({"texts": {"../outside": "Some text."}}, "is not a safe relative path"),
        ({"texts": {"/etc/passwd": "Some text."}}, "is not a safe relative path"),
        ({"texts": {"Chapter": "Some text.", "chapter": "Other text."}}, "would both be"),
        ({"destination": "relative/dir"}, "relative path"),
    ],
)
def test_bad_input_fails_before_any_request_naming_the_problem(emu, tmp_path, kwargs, message):
    arguments: dict[str, Any] = {"texts": {"a": "A fine text."}, "destination": tmp_path, **kwargs}
    op = operator(arguments.pop("destination"), arguments.pop("texts"), **arguments)
    with pytest.raises(AirflowFailException) as caught:
        run(op)
    assert message in str(caught.value)
    assert emu.journal == []
    assert listing(tmp_path) == []


def test_every_problem_is_named_at_once(emu, tmp_path):
    with pytest.raises(AirflowFailException) as caught:
        run(operator(tmp_path, {"a": ""}, voice_id=0, output_format="ogg"))
    message = str(caught.value)
    assert "text 'a' is empty" in message and "voice_id" in message and "output_format" in message


def test_language_case_is_normalised_and_values_rendered_as_text_are_read(emu, tmp_path):
    run(operator(tmp_path, '{"a": "Rendered from a template."}', voice_id="20298", language=" EN-US "))
    (call,) = emu.requests("tts_stream")
    assert (call.json["voice_id"], call.json["language"]) == (20298, "en-us")
    assert final_files(tmp_path) == ["a.flac"]


def test_optional_settings_reach_the_api_as_it_spells_them(emu, tmp_path):
    run(
        operator(
            tmp_path,
            {"a": "With every option."},
            speech_model="mars-instruct",
            user_instructions="Calm and slow.",
            sample_rate=24000,
            voice_settings={"speaking_rate": 1.1},
            inference_options={"temperature": 0.7},
            enhance_named_entities_pronunciation=True,
        )
    )
    (call,) = emu.requests("tts_stream")
    assert call.json == {
        "text": "With every option.",
        "voice_id": VOICE,
        "language": "en-us",
        "speech_model": "mars-instruct",
        "output_configuration": {"format": "flac", "sample_rate": 24000},
        "voice_settings": {"speaking_rate": 1.1},
        "inference_options": {"temperature": 0.7},
        "user_instructions": "Calm and slow.",
        "enhance_named_entities_pronunciation": True,
    }


def test_construction_errors_are_caught_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="max_concurrency"):
        CambTextToSpeechOperator(task_id="t", texts="abc", voice_id=1, destination="/x", max_concurrency=0)
    with pytest.raises(ValueError, match=r"may only use \{name\} and \{ext\}"):
        CambTextToSpeechOperator(
            task_id="t", texts="abc", voice_id=1, destination="/x", filename_template="{run_id}"
        )


# -- faults --------------------------------------------------------------------------------------


def test_rate_limits_server_errors_and_cut_streams_are_retried_per_segment(emu, tmp_path, _instant_retries):
    text = book(160)
    segments = split_text(text)
    emu.fail_next("tts_stream", count=1, status=429, retry_after=7)
    emu.fail_next("tts_stream", count=1, status=503)
    emu.reset_streams_after(2000, count=1)

    result = run(operator(tmp_path, {"a": text}, max_concurrency=1))

    statuses = [call.status for call in emu.requests("tts_stream")]
    assert statuses[:2] == [429, 503]
    # One extra call for the cut stream: only that segment was synthesised again.
    assert len(statuses) == len(segments) + 3
    assert 7.0 in _instant_retries  # Retry-After honoured
    assert result["a"]["segments"] == len(segments)
    assert soundfile.info(str(tmp_path / "a.flac")).duration == pytest.approx(
        sum(map(len, segments)) * SECONDS_PER_CHAR, abs=0.002
    )


def test_a_request_the_api_rejects_fails_at_once_naming_the_segment_and_the_reason(emu, tmp_path):
    # mars-instruct speaks English only in the emulator: the API answers 422 for French.
    with pytest.raises(AirflowFailException) as caught:
        run(
            operator(
                tmp_path, {"chapitre": "Bonjour à tous."}, speech_model="mars-instruct", language="fr-fr"
            )
        )
    message = str(caught.value)
    assert "text 'chapitre', segment 1 of 1" in message
    assert "HTTP 422" in message and "language" in message
    assert [call.status for call in emu.requests("tts_stream")] == [422]  # not retried
    assert final_files(tmp_path) == []


def test_a_rejected_key_fails_at_once(emu, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps({"conn_type": "camb", "host": emu.base_url, "password": "nope"}),
    )
    with pytest.raises(AirflowFailException, match="rejected"):
        run(operator(tmp_path, {"a": book(100)}))
    assert {call.status for call in emu.requests("tts_stream")} == {401}
    assert final_files(tmp_path) == []


def test_an_outage_fails_the_task_retryably_and_the_retry_pays_only_for_missing_segments(
    emu, tmp_path, _instant_retries
):
    text = book(220)
    segments = split_text(text)
    assert len(segments) >= 4
    # The first segment meets an outage longer than the hook's 1 + 5 attempts; the rest go through.
    emu.fail_next("tts_stream", count=6, status=503)

    with pytest.raises(AirflowException) as caught:
        run(operator(tmp_path, {"a": text}, max_concurrency=1))

    assert not isinstance(caught.value, AirflowFailException)  # the task's retries apply
    assert "text 'a', segment 1 of" in str(caught.value)
    # One budget of 1 + 5 attempts for the failing segment (not attempts times request retries).
    assert len(emu.requests("tts_stream")) == 6 + len(segments) - 1
    assert final_files(tmp_path) == []  # no partial file
    staged = [name for name in listing(tmp_path) if name.startswith(STAGING_FOLDER)]
    assert len(staged) == len(segments) - 1  # what was paid for is kept for the retry
    emu.clear_journal()

    run(operator(tmp_path, {"a": text}, max_concurrency=1))

    assert [call.json["text"] for call in emu.requests("tts_stream")] == [segments[0]]
    assert final_files(tmp_path) == ["a.flac"]
    assert soundfile.info(str(tmp_path / "a.flac")).duration == pytest.approx(
        sum(map(len, segments)) * SECONDS_PER_CHAR, abs=0.002
    )
    assert staged_files(tmp_path) == []


def test_the_same_text_under_two_names_is_paid_for_once_and_lands_twice(emu, tmp_path):
    text = book(120)
    segments = split_text(text)

    result = run(operator(tmp_path, {"first": text, "again": text, "other": "Something else."}))

    assert final_files(tmp_path) == ["again.flac", "first.flac", "other.flac"]
    assert sorted(call.json["text"] for call in emu.requests("tts_stream")) == sorted(
        [*segments, "Something else."]
    )
    assert result["first"]["credits"] == float(sum(map(len, segments)))
    assert result["again"]["credits"] is None  # it cost nothing more
    assert (tmp_path / "first.flac").read_bytes() == (tmp_path / "again.flac").read_bytes()
    assert staged_files(tmp_path) == []


def test_audio_that_cannot_be_joined_fails_for_good_and_clears_its_staging(emu, tmp_path, _instant_retries):
    import numpy

    text = book(120)
    segments = split_text(text)
    emu.fail_next("tts_stream", count=6, status=503)  # segment 1 fails; the others are staged
    with pytest.raises(AirflowException):
        run(operator(tmp_path, {"a": text}, max_concurrency=1))
    (staged,) = [tmp_path / name for name in staged_files(tmp_path)][:1]
    # A staged segment at another sample rate, as an API answering inconsistently would leave.
    soundfile.write(str(staged), numpy.zeros(4800, dtype="int16"), 48000, format="FLAC")

    with pytest.raises(AirflowFailException, match="the audio could not be joined"):
        run(operator(tmp_path, {"a": text}, max_concurrency=1))

    assert final_files(tmp_path) == []
    assert staged_files(tmp_path) == []  # a deliberate re-run starts afresh
    assert len(segments) > 1
