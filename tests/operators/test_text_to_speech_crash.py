"""A worker dies mid-book (SIGKILL, no clean-up of any kind): the retry pays only for what was lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import pytest
import soundfile

from airflow_provider_camb.operators.text_to_speech import STAGING_FOLDER, CambTextToSpeechOperator
from airflow_provider_camb.speech.segments import split_text
from tests.operators.test_text_to_speech import SECONDS_PER_CHAR, VOICE, book

WORKER = textwrap.dedent(
    """
    import sys
    from unittest import mock
    from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator

    text = open(sys.argv[1]).read()
    op = CambTextToSpeechOperator(
        task_id="speak",
        texts={"book": text},
        voice_id=int(sys.argv[3]),
        destination=sys.argv[2],
        max_concurrency=2,
    )
    op.execute({"ti": mock.MagicMock()})
    """
)


def staged_segments(destination: Path) -> list[Path]:
    staging = destination / STAGING_FOLDER
    return (
        [p for p in staging.rglob("*") if p.is_file() and not p.name.endswith(".part")]
        if staging.exists()
        else []
    )


def test_a_killed_task_is_finished_by_its_retry_paying_only_for_missing_segments(camb_emulator, tmp_path):
    emu = camb_emulator
    emu.stream_seconds_per_char = SECONDS_PER_CHAR
    emu.add_latency("tts_stream", 0.3)  # slow enough to kill the worker mid-book
    text = book(700)
    segments = split_text(text)
    assert len(segments) >= 12
    source = tmp_path / "book.txt"
    source.write_text(text)
    destination = tmp_path / "audio"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW_CONN_CAMB_DEFAULT": emu.connection_uri_json(),
    }

    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(source), str(destination), str(VOICE)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(staged_segments(destination)) < 5 and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.02)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    assert worker.returncode == -signal.SIGKILL
    assert not (destination / "book.flac").exists()  # no partial file
    time.sleep(0.4)  # let the emulator finish answering what the dead worker had asked
    kept = {int(path.name[:5]) for path in staged_segments(destination)}  # "00003-<key>.flac"
    assert 5 <= len(kept) < len(segments)
    emu.clear_journal()
    emu.clear_faults()

    # The retry, here in this process: another worker would find the same staging folder.
    result = CambTextToSpeechOperator(
        task_id="speak", texts={"book": text}, voice_id=VOICE, destination=str(destination)
    ).execute({"ti": mock.MagicMock()})  # type: ignore[arg-type]

    paid_again = [call.json["text"] for call in emu.requests("tts_stream")]
    # Exactly the segments that were not finished, each once; none of the finished ones again.
    assert sorted(paid_again) == sorted(segments[i] for i in range(len(segments)) if i not in kept)
    info = soundfile.info(str(destination / "book.flac"))
    assert info.duration == pytest.approx(sum(map(len, segments)) * SECONDS_PER_CHAR, abs=0.002)
    assert result["book"]["segments"] == len(segments)
    assert staged_segments(destination) == []
