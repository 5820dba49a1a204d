"""CambTextToSpeechOperator writing to ``gs://`` (gcsfs on gcp-storage-emulator) and ``abfs://``
(the Azure provider's adlfs on Azurite): whole files, byte for byte what the API served, staging
kept for a retry and cleared after, and re-runs that make no API call. S3 has its own module,
``test_text_to_speech_storage.py``."""

from __future__ import annotations

import hashlib

import pytest
import requests
from airflow.sdk.exceptions import AirflowException

from airflow_provider_camb.operators.text_to_speech import STAGING_FOLDER
from airflow_provider_camb.speech.segments import split_text
from tests.operators.test_text_to_speech import SECONDS_PER_CHAR, book, operator, run
from tests.transfers.conftest import Backend, abfs_backend, gcs_backend


@pytest.fixture(params=["gs", "abfs"])
def object_store(request: pytest.FixtureRequest) -> Backend:
    if request.param == "gs":
        return gcs_backend(request.getfixturevalue("gcs_emulator"))
    return abfs_backend(request.getfixturevalue("azurite"))


def speak(store: Backend, texts: dict[str, str], **kwargs):
    return run(operator(store.destination, texts, destination_conn_id=store.conn_id, **kwargs))


def served_audio(emulator, payload: dict) -> bytes:
    """What the API answers to ``payload`` (the emulator's audio is seeded by the text)."""
    answer = requests.post(
        f"{emulator.base_url}/tts-stream", json=payload, headers={"x-api-key": emulator.api_key}, timeout=30
    )
    answer.raise_for_status()
    return answer.content


def test_texts_land_whole_and_a_re_run_makes_no_api_call(camb_emulator, object_store, tmp_path):
    camb_emulator.stream_seconds_per_char = SECONDS_PER_CHAR
    texts = {"ch1": book(160), "ch2": "The second, short chapter."}

    result = speak(object_store, texts)

    assert object_store.listing() == ["ch1.flac", "ch2.flac"]  # staging cleared, no upload left open
    assert result["ch1"]["uri"] == object_store.uri("ch1.flac")
    assert result["ch1"]["segments"] == len(split_text(texts["ch1"])) > 1
    # A one-segment text is stored exactly as the API sent it.
    [short_call] = [c for c in camb_emulator.requests("tts_stream") if c.json["text"] == texts["ch2"]]
    served = served_audio(camb_emulator, short_call.json)
    assert object_store.digest("ch2.flac") == hashlib.sha256(served).hexdigest()
    assert result["ch2"]["bytes"] == len(served)
    digests = {name: object_store.digest(name) for name in ("ch1.flac", "ch2.flac")}
    camb_emulator.clear_journal()

    again = speak(object_store, texts)

    assert camb_emulator.journal == []
    assert {name: object_store.digest(name) for name in digests} == digests
    assert again["ch1"]["bytes"] == result["ch1"]["bytes"]
    # The joined text is the very file the same run writes to a local disk.
    run(operator(tmp_path, {"ch1": texts["ch1"]}))
    assert hashlib.sha256((tmp_path / "ch1.flac").read_bytes()).hexdigest() == digests["ch1.flac"]


def test_a_failed_synthesis_leaves_no_final_object_and_the_retry_reuses_the_staged_segments(
    camb_emulator, object_store, _instant_retries
):
    camb_emulator.stream_seconds_per_char = SECONDS_PER_CHAR
    text = book(220)
    segments = split_text(text)
    camb_emulator.fail_next("tts_stream", count=6, status=503)  # the first segment runs out of attempts

    with pytest.raises(AirflowException):
        speak(object_store, {"book": text}, max_concurrency=1)

    names = object_store.listing()
    assert [name for name in names if not name.startswith(f"{STAGING_FOLDER}/")] == []  # no final file
    assert len(names) == len(segments) - 1
    camb_emulator.clear_journal()

    speak(object_store, {"book": text}, max_concurrency=1)

    assert [call.json["text"] for call in camb_emulator.requests("tts_stream")] == [segments[0]]
    assert object_store.listing() == ["book.flac"]
