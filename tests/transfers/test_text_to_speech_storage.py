"""CambTextToSpeechOperator writing to S3 (moto in server mode), through the same whole-or-nothing
writers as the transfer: real S3 requests, multipart uploads, staging kept and cleared as on disk."""

from __future__ import annotations

import io
from typing import Any
from unittest import mock

import pytest
import soundfile
from airflow.sdk.exceptions import AirflowException

from airflow_provider_camb.operators.text_to_speech import STAGING_FOLDER, CambTextToSpeechOperator
from airflow_provider_camb.speech.segments import split_text
from tests.operators.test_text_to_speech import SECONDS_PER_CHAR, VOICE, book
from tests.transfers.conftest import MOTO_CONN_ID


def speak(destination: str, texts: Any, **kwargs: Any) -> Any:
    op = CambTextToSpeechOperator(
        task_id="speak",
        texts=texts,
        voice_id=VOICE,
        destination=destination,
        destination_conn_id=MOTO_CONN_ID,
        **kwargs,
    )
    return op.execute({"ti": mock.MagicMock()})  # type: ignore[arg-type]


def test_texts_land_on_s3_whole_and_a_re_run_makes_no_api_call(camb_emulator, moto_s3):
    camb_emulator.stream_seconds_per_char = SECONDS_PER_CHAR
    bucket = moto_s3.new_bucket()
    text = book(160)
    segments = split_text(text)

    result = speak(f"s3://{bucket}/audiobook/", {"ch1": text, "ch2": "The second, short chapter."})

    assert moto_s3.keys(bucket) == ["audiobook/ch1.flac", "audiobook/ch2.flac"]  # staging cleared
    assert moto_s3.pending_uploads(bucket) == []
    body = moto_s3.client.get_object(Bucket=bucket, Key="audiobook/ch1.flac")["Body"].read()
    info = soundfile.info(io.BytesIO(body))
    assert info.duration == pytest.approx(sum(map(len, segments)) * SECONDS_PER_CHAR, abs=0.002)
    assert result["ch1"]["uri"] == f"s3://{bucket}/audiobook/ch1.flac"
    assert result["ch1"]["bytes"] == len(body)
    camb_emulator.clear_journal()

    again = speak(f"s3://{bucket}/audiobook/", {"ch1": text, "ch2": "The second, short chapter."})

    assert camb_emulator.journal == []
    assert again["ch1"]["bytes"] == len(body)
    assert again["ch1"]["duration_seconds"] is None  # a re-run downloads nothing to measure it


def test_an_outage_on_s3_keeps_the_finished_segments_for_the_retry(camb_emulator, moto_s3, _instant_retries):
    camb_emulator.stream_seconds_per_char = SECONDS_PER_CHAR
    bucket = moto_s3.new_bucket()
    text = book(220)
    segments = split_text(text)
    camb_emulator.fail_next("tts_stream", count=6, status=503)  # the first segment runs out of attempts

    with pytest.raises(AirflowException):
        speak(f"s3://{bucket}/out/", {"book": text}, max_concurrency=1)

    keys = moto_s3.keys(bucket)
    assert not [key for key in keys if not key.startswith(f"out/{STAGING_FOLDER}/")]  # no final file
    assert len(keys) == len(segments) - 1
    assert moto_s3.pending_uploads(bucket) == []
    camb_emulator.clear_journal()

    speak(f"s3://{bucket}/out/", {"book": text}, max_concurrency=1)

    assert [call.json["text"] for call in camb_emulator.requests("tts_stream")] == [segments[0]]
    assert moto_s3.keys(bucket) == ["out/book.flac"]
