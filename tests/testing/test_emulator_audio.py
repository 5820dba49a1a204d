"""Served audio is real: soundfile decodes it to the advertised format, rate and length."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING

import numpy as np
import pytest
import requests
import soundfile as sf

from airflow_provider_camb.testing._audio import FlacFile, make_audio, tone_cycles, tone_samples

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_camb.testing import CambEmulator


def _decode(data: bytes) -> tuple[np.ndarray, sf._SoundFileInfo]:
    samples, _ = sf.read(io.BytesIO(data), dtype="int16")
    return samples, sf.info(io.BytesIO(data))


@pytest.mark.parametrize("audio_format", ["flac", "wav"])
@pytest.mark.parametrize("sample_rate", [22050, 48000, 11025])
def test_downloaded_audio_decodes_to_the_advertised_rate_and_length(
    camb_emulator: CambEmulator, audio_format: str, sample_rate: int
) -> None:
    (run_id,) = camb_emulator.add_tts_runs(
        1, audio_format=audio_format, sample_rate=sample_rate, duration_seconds=1.25
    )
    data = requests.get(camb_emulator.download_url(run_id), timeout=10).content
    samples, info = _decode(data)
    assert info.format == audio_format.upper()
    assert info.subtype == "PCM_16"
    assert info.channels == 1
    assert info.samplerate == sample_rate
    assert info.frames == len(samples) == round(1.25 * sample_rate)
    assert camb_emulator.audio_info(run_id)["frames"] == info.frames


@pytest.mark.parametrize("audio_format", ["flac", "wav"])
@pytest.mark.parametrize("size_bytes", [64, 65, 67, 999, 8_251, 8_252, 123_457, 1_000_000])
def test_an_exact_size_file_has_that_size_and_still_decodes(
    camb_emulator: CambEmulator, audio_format: str, size_bytes: int
) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, audio_format=audio_format, size_bytes=size_bytes)
    data = requests.get(camb_emulator.download_url(run_id), timeout=10).content
    assert len(data) == size_bytes == camb_emulator.audio_size(run_id)
    samples, info = _decode(data)
    assert info.frames == len(samples) == camb_emulator.audio_info(run_id)["frames"] > 0


def test_samples_are_the_run_s_sine_tone(camb_emulator: CambEmulator) -> None:
    first, second = camb_emulator.add_tts_runs(2, duration_seconds=0.5)
    a, _ = _decode(b"".join(camb_emulator.iter_audio(first)))
    b, _ = _decode(b"".join(camb_emulator.iter_audio(second)))
    expected = np.resize(np.array(tone_samples(tone_cycles(first)), dtype=np.int16), len(a))
    assert np.array_equal(a, expected)
    assert not np.array_equal(a, b)  # another run, another pitch
    assert np.abs(a).max() > 5000


def test_audio_is_deterministic_per_run_id() -> None:
    one = make_audio(1234, size_bytes=200_000)
    two = make_audio(1234, size_bytes=200_000)
    assert b"".join(one.iter_bytes()) == b"".join(two.iter_bytes())


@pytest.mark.parametrize("audio_format", ["flac", "wav"])
def test_any_byte_range_matches_the_whole_file(audio_format: str) -> None:
    audio = make_audio(77, audio_format=audio_format, size_bytes=1_300_001)
    whole = b"".join(audio.iter_bytes())
    for start, end in [(0, 1), (41, 43), (8_000, 25_000), (600_000, 1_300_001), (1_299_990, 2_000_000)]:
        assert b"".join(audio.iter_bytes(start, end)) == whole[start:end]


def test_sizes_below_the_minimum_are_refused(camb_emulator: CambEmulator) -> None:
    with pytest.raises(ValueError, match="at least 64"):
        camb_emulator.add_tts_runs(1, size_bytes=63)


def test_a_multi_gigabyte_file_is_sized_without_generating_it() -> None:
    audio = FlacFile.for_size(5, 22050, 5 * 2**30 + 3)
    assert audio.size == 5 * 2**30 + 3
    tail = b"".join(audio.iter_bytes(audio.size - 100_000))
    assert len(tail) == 100_000


def test_a_64_mib_file_streams_and_decodes_without_being_held(
    camb_emulator: CambEmulator, tmp_path: Path
) -> None:
    size = 64 * 2**20
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=size)
    target = tmp_path / "big.flac"
    digest = hashlib.sha256()
    with (
        requests.get(camb_emulator.download_url(run_id), stream=True, timeout=30) as response,
        target.open("wb") as out,
    ):
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    assert target.stat().st_size == size
    assert digest.hexdigest() == camb_emulator.audio_sha256(run_id)
    info = sf.info(str(target))
    assert info.frames == camb_emulator.audio_info(run_id)["frames"]
    with sf.SoundFile(str(target)) as sound:
        sound.seek(info.frames - 5000)  # decode only the last frames, not 30 minutes of audio
        tail = sound.read(dtype="int16")
    assert len(tail) == 5000
