"""Joining synthesised audio segments into one file, through libsndfile (``soundfile``).

Pure functions on local files: no Airflow, no network. Segments are decoded whatever their format
(libsndfile detects it from the file itself) and their frames are streamed, in order and a block
at a time, into one new file, so memory stays flat however many or long the segments are.

``soundfile`` (and numpy) are imported inside the functions: this module is imported wherever the
provider is, and most of those imports never join audio.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from airflow_provider_camb.exceptions import CambError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import soundfile

# Frames read and written per step: 128 KiB of mono 16-bit audio.
BLOCK_FRAMES = 65536


@dataclass(frozen=True)
class OutputFormat:
    """What libsndfile needs to write one of our output formats, and how to label the file.

    :param soundfile_format: libsndfile's major format (``soundfile.available_formats()``).
    :param subtype: libsndfile's subtype (``soundfile.available_subtypes(format)``).
    :param extension: the file name extension, with its dot.
    :param content_type: the MIME type to store the file with.
    """

    soundfile_format: str
    subtype: str
    extension: str
    content_type: str


# The API's audio is 16-bit, so lossless output stays 16-bit: more bits would only be zeros.
OUTPUT_FORMATS: Mapping[str, OutputFormat] = MappingProxyType(
    {
        "wav": OutputFormat("WAV", "PCM_16", ".wav", "audio/wav"),
        "flac": OutputFormat("FLAC", "PCM_16", ".flac", "audio/flac"),
        "mp3": OutputFormat("MP3", "MPEG_LAYER_III", ".mp3", "audio/mpeg"),
    }
)


class AudioJoinError(CambError):
    """Audio segments cannot be joined: one cannot be decoded, or they do not match."""


@dataclass(frozen=True)
class AudioInfo:
    """The shape of an audio file: how many frames, at what rate, in how many channels."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the shape of the audio file at ``path`` from its header.

    :raises AudioJoinError: naming the file, if libsndfile cannot decode it.
    """
    import soundfile

    try:
        info = soundfile.info(os.fspath(path))
    except (soundfile.SoundFileError, OSError) as error:
        raise AudioJoinError(f"{os.fspath(path)} is not audio that libsndfile can decode: {error}") from error
    return AudioInfo(frames=info.frames, sample_rate=info.samplerate, channels=info.channels)


def join_segments(
    parts: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str], output_format: str
) -> AudioInfo:
    """Join the audio files ``parts``, in order, into one new file at ``out_path``.

    The parts may be in any format libsndfile reads, mixed. They must share sample rate and
    channel count: nothing is resampled. The frames are copied a block at a time, without gaps, so
    lossless output has exactly the parts' frames. A single part already in the output format
    (and, for WAV, with a consistent header) is copied byte for byte instead. ``out_path`` is
    replaced only once the whole file is written.

    :param parts: the segment files, in playing order.
    :param out_path: where to write the joined file.
    :param output_format: a key of :data:`OUTPUT_FORMATS`: ``"wav"``, ``"flac"`` or ``"mp3"``.
    :return: the shape of the written file, as read back from it.
    :raises AudioJoinError: naming the part, if one cannot be decoded, holds no audio, or differs
        from the first in sample rate or channel count; or if the output format cannot hold the
        audio (MP3 only has sample rates from 8 to 48 kHz and at most two channels).
    :raises ValueError: for no parts or an unknown output format.
    """
    target = _output_format(output_format)
    if not parts:
        raise ValueError("join_segments needs at least one audio segment, got none.")
    paths = [os.fspath(part) for part in parts]
    out = os.fspath(out_path)
    # Check every part before writing anything: a mismatch in part 40 should not cost 39 decodes.
    first = _check_parts(paths)

    # Written beside the target and renamed over it: a failure never leaves half a file there.
    partial = str(Path(out).with_name(f".{Path(out).name}.{uuid.uuid4().hex}.partial"))
    try:
        if len(paths) == 1 and _is_already(paths[0], target):
            shutil.copyfile(paths[0], partial)
        else:
            _write_joined(paths, partial, target, first)
        os.replace(partial, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return probe(out)


def _output_format(name: str) -> OutputFormat:
    try:
        return OUTPUT_FORMATS[name.strip().lower()]
    except (KeyError, AttributeError):
        supported = ", ".join(OUTPUT_FORMATS)
        raise ValueError(f"Unsupported output format {name!r}; supported: {supported}.") from None


def _check_parts(paths: list[str]) -> AudioInfo:
    first: AudioInfo | None = None
    for index, path in enumerate(paths):
        try:
            info = probe(path)
        except AudioJoinError as error:
            raise AudioJoinError(f"Audio segment {index} cannot be decoded: {error}") from error
        if info.frames <= 0:
            # Text of 3 characters or more is never silence; a streamed WAV whose header still
            # says "0 bytes of data" would otherwise vanish from the joined file without a word.
            raise AudioJoinError(f"Audio segment {index} ({path}) holds no audio frames.")
        if first is None:
            first = info
        elif (info.sample_rate, info.channels) != (first.sample_rate, first.channels):
            raise AudioJoinError(
                f"Audio segment {index} ({path}) has {info.sample_rate} Hz and {info.channels} "
                f"channel(s), but segment 0 ({paths[0]}) has {first.sample_rate} Hz and "
                f"{first.channels} channel(s); segments must match (nothing is resampled)."
            )
    assert first is not None  # paths is not empty
    return first


def _write_joined(paths: list[str], out: str, target: OutputFormat, shape: AudioInfo) -> None:
    import soundfile

    # libsndfile's MP3 default is a low variable bitrate (about 10 kbit/s for speech at 22 kHz);
    # the joined file is the one lossy generation, so encode it at the highest constant bitrate.
    quality = (
        {"compression_level": 0.0, "bitrate_mode": "CONSTANT"} if target.soundfile_format == "MP3" else {}
    )
    try:
        sink = soundfile.SoundFile(
            out,
            "w",
            samplerate=shape.sample_rate,
            channels=shape.channels,
            format=target.soundfile_format,
            subtype=target.subtype,
            **quality,
        )
    except soundfile.SoundFileError as error:
        raise AudioJoinError(
            f"Cannot write {target.extension.lstrip('.')} audio at {shape.sample_rate} Hz with "
            f"{shape.channels} channel(s): {error}"
        ) from error
    with sink:
        _copy_frames(paths, sink, shape.channels)


def _is_already(path: str, target: OutputFormat) -> bool:
    import soundfile

    info = soundfile.info(path)
    if (info.format, info.subtype) != (target.soundfile_format, target.subtype):
        return False
    # A streamed WAV may carry placeholder sizes (0xFFFFFFFF) that libsndfile forgives and other
    # players do not; re-writing it gives a clean header.
    return target.soundfile_format != "WAV" or _riff_size_matches(path)


def _riff_size_matches(path: str) -> bool:
    with open(path, "rb") as stream:
        head = stream.read(8)
        size = os.fstat(stream.fileno()).st_size
    return len(head) == 8 and head[:4] == b"RIFF" and struct.unpack("<I", head[4:])[0] == size - 8


def _copy_frames(paths: list[str], sink: soundfile.SoundFile, channels: int) -> None:
    import numpy
    import soundfile

    # One buffer for every block of every part. int16 keeps 16-bit input bit-exact in 16-bit
    # output; libsndfile converts anything else (24-bit, float, MP3) on the way in.
    buffer = numpy.empty((BLOCK_FRAMES, channels), dtype=numpy.int16)
    for index, path in enumerate(paths):
        try:
            source = soundfile.SoundFile(path)
        except (soundfile.SoundFileError, OSError) as error:
            raise AudioJoinError(f"Audio segment {index} ({path}) cannot be decoded: {error}") from error
        with source:
            while True:
                try:
                    block = source.read(BLOCK_FRAMES, dtype="int16", always_2d=True, out=buffer)
                except soundfile.SoundFileError as error:
                    raise AudioJoinError(
                        f"Audio segment {index} ({path}) failed to decode: {error}"
                    ) from error
                if not len(block):
                    break
                sink.write(block)
