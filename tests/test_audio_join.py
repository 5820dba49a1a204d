"""Joining audio segments into one file through libsndfile."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from airflow_provider_camb.exceptions import CambError
from airflow_provider_camb.speech.join import (
    OUTPUT_FORMATS,
    AudioInfo,
    AudioJoinError,
    join_segments,
    probe,
)

RATE = 22050
# LAME pads the stream to whole MPEG frames (576 samples per granule at 22.05 kHz, 1152 at 32 kHz
# and up) and adds an encoder delay of 576 samples; a decoder that ignores the LAME tag libsndfile
# writes also keeps its own 529-sample delay. libsndfile 1.2.2 trims all of it and returns the
# exact count, but another build or decoder may not. Two 1152-sample frames cover the worst case;
# the padding is paid once per file, never per segment, so the tolerance does not grow with the
# number of parts.
MP3_FRAME_TOLERANCE = 2 * 1152


def tone(seconds: float, frequency: float, amplitude: int = 8000, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    wave = (np.sin(2 * np.pi * frequency * t) * amplitude).astype(np.int16)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def write_part(path: Path, samples: np.ndarray, fmt: str = "wav", rate: int = RATE) -> Path:
    spec = OUTPUT_FORMATS[fmt]
    sf.write(path, samples, rate, format=spec.soundfile_format, subtype=spec.subtype)
    return path


@pytest.fixture
def three_parts(tmp_path: Path) -> tuple[list[Path], np.ndarray]:
    """0.5 s, 1.3 s and 0.2 s of different tones at 22050 Hz mono, as 16-bit WAV."""
    samples = [tone(0.5, 220), tone(1.3, 330, 3000), tone(0.2, 440)]
    paths = [write_part(tmp_path / f"part{i}.wav", s) for i, s in enumerate(samples)]
    return paths, np.concatenate(samples)


def test_output_formats_name_what_libsndfile_writes_and_how_to_label_it():
    assert {
        name: (f.soundfile_format, f.subtype, f.extension, f.content_type)
        for name, f in OUTPUT_FORMATS.items()
    } == {
        "wav": ("WAV", "PCM_16", ".wav", "audio/wav"),
        "flac": ("FLAC", "PCM_16", ".flac", "audio/flac"),
        "mp3": ("MP3", "MPEG_LAYER_III", ".mp3", "audio/mpeg"),
    }
    for spec in OUTPUT_FORMATS.values():
        assert sf.check_format(spec.soundfile_format, spec.subtype)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_lossless_output_holds_exactly_the_parts_samples_in_order(tmp_path, three_parts, fmt):
    paths, expected = three_parts
    out = tmp_path / f"joined{OUTPUT_FORMATS[fmt].extension}"

    info = join_segments(paths, out, fmt)

    assert info == AudioInfo(frames=len(expected), sample_rate=RATE, channels=1)
    assert info.duration_seconds == pytest.approx(2.0)
    assert sf.info(out).format == OUTPUT_FORMATS[fmt].soundfile_format
    assert sf.info(out).subtype == "PCM_16"
    joined, rate = sf.read(out, dtype="int16")
    assert rate == RATE
    # Bit-exact: no gap, no click, no header bytes read as samples at the seams.
    np.testing.assert_array_equal(joined, expected)


def test_mp3_output_decodes_to_the_parts_length_and_order(tmp_path, three_parts):
    paths, expected = three_parts
    out = tmp_path / "joined.mp3"

    info = join_segments(paths, out, "mp3")

    assert (sf.info(out).format, sf.info(out).subtype) == ("MP3", "MPEG_LAYER_III")
    assert (info.sample_rate, info.channels) == (RATE, 1)
    assert abs(info.frames - len(expected)) <= MP3_FRAME_TOLERANCE
    joined, _ = sf.read(out, dtype="float64")
    # The quiet middle part stays in the middle: loud, quiet, loud, measured well inside each part.
    loudness = [np.sqrt(np.mean(joined[a:b] ** 2)) for a, b in [(2000, 8000), (20000, 30000), (40000, 42000)]]
    assert loudness[1] < loudness[0] / 2 and loudness[1] < loudness[2] / 2


def test_stereo_parts_join_into_stereo(tmp_path):
    samples = [tone(0.3, 220, channels=2), tone(0.4, 550, channels=2)]
    paths = [write_part(tmp_path / f"s{i}.flac", s, "flac") for i, s in enumerate(samples)]

    info = join_segments(paths, tmp_path / "joined.wav", "wav")

    assert info.channels == 2
    np.testing.assert_array_equal(sf.read(tmp_path / "joined.wav", dtype="int16")[0], np.concatenate(samples))


def test_parts_in_mixed_formats_join_into_mp3(tmp_path):
    samples = [tone(0.6, 300), tone(0.4, 500), tone(0.5, 700)]
    paths = [
        write_part(tmp_path / "a.flac", samples[0], "flac"),
        write_part(tmp_path / "b.wav", samples[1], "wav"),
        write_part(tmp_path / "c.mp3", samples[2], "mp3"),
    ]

    info = join_segments(paths, tmp_path / "joined.mp3", "mp3")

    assert (info.sample_rate, info.channels) == (RATE, 1)
    assert abs(info.frames - sum(len(s) for s in samples)) <= 2 * MP3_FRAME_TOLERANCE  # one MP3 in, one out
    assert len(sf.read(tmp_path / "joined.mp3")[0]) == info.frames


def test_parts_are_recognised_by_content_not_by_name(tmp_path):
    samples = [tone(0.2, 300), tone(0.3, 400)]
    first = write_part(tmp_path / "first.flac", samples[0], "flac").rename(tmp_path / "first.wav")
    second = write_part(tmp_path / "second.wav", samples[1]).rename(tmp_path / "second-no-extension")

    join_segments([first, second], tmp_path / "joined.flac", "flac")

    np.testing.assert_array_equal(
        sf.read(tmp_path / "joined.flac", dtype="int16")[0], np.concatenate(samples)
    )


def test_a_single_part_in_the_output_format_is_copied_byte_for_byte(tmp_path):
    part = write_part(tmp_path / "only.flac", tone(0.7, 440), "flac")

    info = join_segments([part], tmp_path / "joined.flac", "flac")

    assert (tmp_path / "joined.flac").read_bytes() == part.read_bytes()
    assert info == probe(part)


def test_a_single_part_in_another_format_is_transcoded(tmp_path):
    samples = tone(0.7, 440)
    part = write_part(tmp_path / "only.flac", samples, "flac")

    join_segments([part], tmp_path / "joined.wav", "wav")

    assert sf.info(tmp_path / "joined.wav").format == "WAV"
    np.testing.assert_array_equal(sf.read(tmp_path / "joined.wav", dtype="int16")[0], samples)


def test_a_streamed_wav_with_placeholder_sizes_is_rewritten_not_copied(tmp_path):
    samples = tone(0.4, 440)
    part = write_part(tmp_path / "streamed.wav", samples)
    data = bytearray(part.read_bytes())
    data[4:8] = data[data.find(b"data") + 4 : data.find(b"data") + 8] = b"\xff\xff\xff\xff"
    part.write_bytes(bytes(data))

    info = join_segments([part], tmp_path / "joined.wav", "wav")

    clean = (tmp_path / "joined.wav").read_bytes()
    assert clean != bytes(data)
    assert int.from_bytes(clean[4:8], "little") == len(clean) - 8
    assert info.frames == len(samples)
    np.testing.assert_array_equal(sf.read(tmp_path / "joined.wav", dtype="int16")[0], samples)


def test_a_part_at_another_sample_rate_is_named_with_both_rates(tmp_path):
    paths = [
        write_part(tmp_path / "a.wav", tone(0.2, 300)),
        write_part(tmp_path / "b.wav", tone(0.2, 300)),
        write_part(tmp_path / "c.wav", tone(0.2, 300), rate=24000),
    ]

    with pytest.raises(AudioJoinError) as caught:
        join_segments(paths, tmp_path / "joined.wav", "wav")

    message = str(caught.value)
    assert "Audio segment 2" in message and "c.wav" in message
    assert "24000 Hz" in message and "22050 Hz" in message
    assert "nothing is resampled" in message
    assert not (tmp_path / "joined.wav").exists()


def test_a_part_with_another_channel_count_is_named(tmp_path):
    paths = [
        write_part(tmp_path / "a.wav", tone(0.2, 300)),
        write_part(tmp_path / "b.wav", tone(0.2, 300, channels=2)),
    ]

    with pytest.raises(
        AudioJoinError, match=r"Audio segment 1 .*b\.wav.* 2 channel\(s\), but segment 0 .* 1 channel"
    ):
        join_segments(paths, tmp_path / "joined.wav", "wav")


def test_an_undecodable_part_is_named(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(7).bytes(4096))
    paths = [write_part(tmp_path / "a.wav", tone(0.2, 300)), garbage]

    with pytest.raises(AudioJoinError, match=r"Audio segment 1 cannot be decoded: .*garbage\.wav") as caught:
        join_segments(paths, tmp_path / "joined.mp3", "mp3")

    assert isinstance(caught.value, CambError)
    assert not (tmp_path / "joined.mp3").exists()


def test_probe_names_a_missing_or_undecodable_file(tmp_path):
    (tmp_path / "noise.flac").write_bytes(b"fLaC" + bytes(100))
    for name in ["missing.flac", "noise.flac"]:
        with pytest.raises(AudioJoinError, match=rf"{name} is not audio that libsndfile can decode"):
            probe(tmp_path / name)


def test_a_part_without_frames_is_refused(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.SoundFile(empty, "w", RATE, 1, format="WAV", subtype="PCM_16").close()
    paths = [write_part(tmp_path / "a.wav", tone(0.2, 300)), empty]

    with pytest.raises(AudioJoinError, match=r"Audio segment 1 \(.*empty\.wav\) holds no audio frames"):
        join_segments(paths, tmp_path / "joined.wav", "wav")


def test_mp3_refuses_a_sample_rate_it_cannot_hold(tmp_path):
    part = write_part(tmp_path / "hi.wav", tone(0.1, 300), rate=96000)

    with pytest.raises(AudioJoinError, match="Cannot write mp3 audio at 96000 Hz"):
        join_segments([part], tmp_path / "joined.mp3", "mp3")

    assert os.listdir(tmp_path) == ["hi.wav"]


def test_unknown_formats_and_no_parts_are_caller_errors(tmp_path, three_parts):
    with pytest.raises(ValueError, match=r"Unsupported output format 'ogg'; supported: wav, flac, mp3"):
        join_segments(three_parts[0], tmp_path / "joined.ogg", "ogg")
    with pytest.raises(ValueError, match="at least one audio segment"):
        join_segments([], tmp_path / "joined.wav", "wav")


def test_a_failed_join_keeps_an_existing_file_untouched(tmp_path, three_parts):
    out = tmp_path / "joined.wav"
    out.write_bytes(b"previous")
    with pytest.raises(AudioJoinError):
        join_segments([*three_parts[0], tmp_path / "missing.wav"], out, "wav")
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.wav", "part0.wav", "part1.wav", "part2.wav"]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_memory_stays_flat_for_two_hundred_parts_and_a_long_one(tmp_path, fmt):
    # 199 parts of 0.25 s and one of 60 s: 4.8 MB of samples, the long part 2.6 MB of them.
    # Holding them all, or even one whole part at a time, would show in the peak; one 128 KiB
    # block buffer, reused for every block of every part, is all there should be.
    short, long = tone(0.25, 440), tone(60.0, 330)
    paths = [write_part(tmp_path / f"p{i:03}.wav", short) for i in range(199)]
    paths.insert(100, write_part(tmp_path / "long.wav", long))

    tracemalloc.start()
    try:
        info = join_segments(paths, tmp_path / f"joined.{fmt}", fmt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info.frames == 199 * len(short) + len(long)
    assert peak < 512 * 1024, f"peak of {peak} bytes of Python allocations"


def test_importing_the_module_does_not_import_soundfile():
    code = (
        "import sys, airflow_provider_camb.speech.join;"
        "assert 'soundfile' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
