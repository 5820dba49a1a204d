"""Streamed, deterministic FLAC and WAV files of any size, for the emulator to serve.

Nothing here holds a whole file: a file is a small layout object that knows its size and
produces any byte range on demand.  Every full block of audio is the same sine tone (an
integer number of periods per block, so blocks join without a click), which lets a FLAC
frame reuse one precomputed body and its CRC-16: only the few header bytes that carry the
frame number are new per frame.  That keeps generation at several hundred MB/s on one core.
"""

from __future__ import annotations

import math
import struct
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Samples per audio block (FLAC frame).  4096 is what libFLAC itself uses at these rates.
BLOCK_SIZE = 4096
#: Bytes handed to the socket at a time; large writes keep syscall overhead negligible.
CHUNK_SIZE = 512 * 1024
#: Smallest file the layouts can size exactly (header, at least one sample, optional filler).
MIN_SIZE_BYTES = 64
#: RIFF sizes are 32-bit.
MAX_WAV_BYTES = 0xFFFFFFFF

AUDIO_FORMATS = ("flac", "wav")
CONTENT_TYPES = {"flac": "audio/flac", "wav": "audio/wav"}

_AMPLITUDE = 0.3 * 32767

_File = TypeVar("_File", bound="AudioFile")


def _make_crc8_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return table


def _make_crc16_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        table.append(c)
    return table


_CRC8 = _make_crc8_table()
_CRC16 = _make_crc16_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """FLAC frame-header CRC-8 (polynomial 0x07, MSB first).

    :param data: bytes to checksum.
    :param crc: register value to continue from.
    """
    table = _CRC8
    for b in data:
        crc = table[crc ^ b]
    return crc


def crc16(data: bytes, crc: int = 0) -> int:
    """FLAC frame CRC-16 (polynomial 0x8005, MSB first, no reflection, no final xor).

    :param data: bytes to checksum.
    :param crc: register value to continue from.
    """
    table = _CRC16
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


@lru_cache(maxsize=8)
def _crc16_shift_tables(length: int) -> tuple[list[int], list[int]]:
    """Tables for the effect of a starting register on the CRC of ``length`` more bytes.

    The CRC is linear over GF(2): crc(init, body) == crc(0, body) ^ crc(init, zeros(length)),
    and crc(init, zeros) is itself linear in ``init``.  So sixteen runs over zero bytes (one per
    register bit) give the whole map, split into a high-byte and a low-byte table.
    """
    zeros = bytes(length)
    basis = [crc16(zeros, 1 << bit) for bit in range(16)]
    hi = [0] * 256
    lo = [0] * 256
    for v in range(256):
        h = lw = 0
        for bit in range(8):
            if v >> bit & 1:
                h ^= basis[bit + 8]
                lw ^= basis[bit]
        hi[v] = h
        lo[v] = lw
    return hi, lo


def _utf8_number(n: int) -> bytes:
    """The "UTF-8" coding FLAC uses for frame numbers (up to 31 bits, so up to 6 bytes)."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x110000:
        # surrogatepass: FLAC does not care that 0xD800..0xDFFF are not characters.
        return chr(n).encode("utf-8", "surrogatepass")
    if n < 0x200000:
        return bytes((0xF0 | n >> 18, 0x80 | n >> 12 & 0x3F, 0x80 | n >> 6 & 0x3F, 0x80 | n & 0x3F))
    if n < 0x4000000:
        return bytes(
            (
                0xF8 | n >> 24,
                0x80 | n >> 18 & 0x3F,
                0x80 | n >> 12 & 0x3F,
                0x80 | n >> 6 & 0x3F,
                0x80 | n & 0x3F,
            )
        )
    if n < 0x80000000:
        return bytes(
            (
                0xFC | n >> 30,
                0x80 | n >> 24 & 0x3F,
                0x80 | n >> 18 & 0x3F,
                0x80 | n >> 12 & 0x3F,
                0x80 | n >> 6 & 0x3F,
                0x80 | n & 0x3F,
            )
        )
    raise ValueError(f"FLAC frame number {n} does not fit in 31 bits")


# (first number, one past the last, coded length) for each length of the frame-number coding.
_UTF8_LEVELS = (
    (0, 0x80, 1),
    (0x80, 0x800, 2),
    (0x800, 0x10000, 3),
    (0x10000, 0x200000, 4),
    (0x200000, 0x4000000, 5),
    (0x4000000, 0x80000000, 6),
)


def _utf8_total(n: int) -> int:
    """Sum of the coded lengths of frame numbers 0..n-1, without iterating."""
    total = 0
    for lo, hi, width in _UTF8_LEVELS:
        if n <= lo:
            break
        total += (min(n, hi) - lo) * width
    return total


def tone_cycles(seed: int) -> int:
    """Periods of the sine per block for ``seed``: 20..80, so 107..430 Hz at 22.05 kHz.

    :param seed: usually the run ID.
    """
    return 20 + seed % 61


@lru_cache(maxsize=128)
def tone_samples(cycles: int) -> tuple[int, ...]:
    """One block of a sine tone with a whole number of periods, so blocks tile seamlessly.

    Keyed by the period count rather than the run, so a thousand runs share 61 cached blocks.

    :param cycles: periods per block, see :func:`tone_cycles`.
    """
    step = 2.0 * math.pi * cycles / BLOCK_SIZE
    return tuple(round(_AMPLITUDE * math.sin(step * i)) for i in range(BLOCK_SIZE))


class AudioFile:
    """A generated audio file: its size, type and a way to stream any byte range of it.

    :param seed: selects the tone (the run ID).
    :param sample_rate: samples per second, below 2**20 (FLAC's field width).
    :param n_samples: number of mono 16-bit samples, at least 1.
    """

    audio_format: str = ""

    def __init__(self, seed: int, sample_rate: int, n_samples: int) -> None:
        if n_samples < 1:
            raise ValueError("an audio file needs at least one sample")
        if not 1 <= sample_rate < 1 << 20:
            raise ValueError(f"unsupported sample rate {sample_rate}")
        self.seed = seed
        self.sample_rate = sample_rate
        self.n_samples = n_samples
        self.size = 0

    @property
    def content_type(self) -> str:
        """The MIME type to serve the file with."""
        return CONTENT_TYPES[self.audio_format]

    @property
    def duration_seconds(self) -> float:
        """Length of the audio."""
        return self.n_samples / self.sample_rate

    @classmethod
    def for_size(cls: type[_File], seed: int, sample_rate: int, size_bytes: int) -> _File:
        """A file of exactly ``size_bytes`` bytes.

        :param seed: selects the tone.
        :param sample_rate: samples per second.
        :param size_bytes: the exact file size, at least :data:`MIN_SIZE_BYTES`.
        """
        if size_bytes < MIN_SIZE_BYTES:
            raise ValueError(f"size_bytes must be at least {MIN_SIZE_BYTES}")
        return cls._fit(seed, sample_rate, size_bytes)

    @classmethod
    def _fit(cls: type[_File], seed: int, sample_rate: int, size_bytes: int) -> _File:
        # The format's own sizing, for a size already checked against MIN_SIZE_BYTES.
        raise NotImplementedError

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes ``[start, end)`` of the file in chunks of about :data:`CHUNK_SIZE`.

        :param start: first byte offset.
        :param end: one past the last byte; ``None`` for the end of the file.
        """
        raise NotImplementedError


class FlacFile(AudioFile):
    """A FLAC stream: STREAMINFO, optional PADDING, then fixed-blocksize VERBATIM frames.

    VERBATIM subframes store samples uncompressed, which is legal FLAC and lets every full
    frame share one body whose CRC is known in advance.

    :param seed: selects the tone.
    :param sample_rate: samples per second.
    :param n_samples: number of samples.
    :param padding: total bytes of PADDING metadata (block headers included): 0 or at least 4.
    """

    audio_format = "flac"

    # Sample rates with a code of their own in the frame header; others say "see STREAMINFO".
    _RATE_CODES = {
        88200: 1, 176400: 2, 192000: 3, 8000: 4, 16000: 5, 22050: 6,
        24000: 7, 32000: 8, 44100: 9, 48000: 10, 96000: 11,
    }  # fmt: skip

    def __init__(self, seed: int, sample_rate: int, n_samples: int, padding: int = 0) -> None:
        super().__init__(seed, sample_rate, n_samples)
        if n_samples >= 1 << 36:
            raise ValueError("too many samples for FLAC")
        if padding < 0 or 0 < padding < 4:
            raise ValueError("padding must be 0 or at least 4 bytes (a block header)")
        self.padding = padding
        self.header = self._metadata(padding)
        self.full_frames, self.last_samples = divmod(n_samples, BLOCK_SIZE)
        # Frame header bytes 0-3: sync + fixed blocksize, blocksize code 12 (4096), rate code,
        # mono, 16 bits per sample.
        rate_code = self._RATE_CODES.get(sample_rate, 0)
        self._prefix = bytes((0xFF, 0xF8, 12 << 4 | rate_code, 0x08))
        self._last_prefix = bytes((0xFF, 0xF8, 7 << 4 | rate_code, 0x08))
        self._body, self._body_crc = _flac_body(tone_cycles(seed))
        self._full_frame_size = 8 + 2 * BLOCK_SIZE  # plus the coded frame number
        self._frames_start = len(self.header)
        self.size = len(self.header) + self.audio_bytes(n_samples)

    @classmethod
    def _fit(cls, seed: int, sample_rate: int, size_bytes: int) -> FlacFile:
        # As many samples as fit, then a PADDING block for the rest.
        header = 4 + 4 + 34
        budget = size_bytes - header
        lo, hi = 1, budget // 2 + 1  # every sample takes two bytes, so this bounds the search
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cls.audio_bytes(mid) <= budget:
                lo = mid
            else:
                hi = mid - 1
        n = lo
        rest = budget - cls.audio_bytes(n)
        if 0 < rest < 4:
            # Too little room for a PADDING block header: give up two samples (at least
            # four bytes), which always leaves room for one.
            n -= 2
            rest = budget - cls.audio_bytes(n)
        made = cls(seed, sample_rate, n, padding=rest)
        if made.size != size_bytes:  # pragma: no cover - the arithmetic above is exact
            raise AssertionError(f"FLAC sizing is off: wanted {size_bytes}, got {made.size}")
        return made

    @staticmethod
    def audio_bytes(n_samples: int) -> int:
        """Bytes taken by the frames of ``n_samples`` samples (everything after the metadata)."""
        full, last = divmod(n_samples, BLOCK_SIZE)
        size = full * (8 + 2 * BLOCK_SIZE) + _utf8_total(full)
        if last:
            size += 8 + len(_utf8_number(full)) + 2 + 2 * last
        return size

    def _metadata(self, padding: int) -> bytes:
        info = struct.pack(">HHxxxxxx", BLOCK_SIZE, BLOCK_SIZE)  # frame sizes 0 = unknown
        info += struct.pack(">Q", self.sample_rate << 44 | 0 << 41 | 15 << 36 | self.n_samples)
        info += bytes(16)  # MD5 of the samples: zero means "not computed", decoders skip the check
        blocks = [(0, info)]
        # A PADDING block holds at most 2**24-1 bytes; larger fillers chain several blocks,
        # each leaving at least a block header's worth for the next.
        while padding:
            payload = min(padding - 4, 0xFFFFFF)
            if 0 < padding - 4 - payload < 4:
                payload -= 4
            blocks.append((1, bytes(payload)))
            padding -= payload + 4
        out = [b"fLaC"]
        for i, (kind, payload_bytes) in enumerate(blocks):
            last_flag = 0x80 if i == len(blocks) - 1 else 0
            out.append(struct.pack(">I", (last_flag | kind) << 24 | len(payload_bytes)))
            out.append(payload_bytes)
        return b"".join(out)

    def _frame_offset(self, n: int) -> int:
        """Byte offset of frame ``n`` (0 <= n <= full_frames)."""
        return self._frames_start + n * self._full_frame_size + _utf8_total(n)

    @cached_property
    def _last(self) -> bytes:
        if not self.last_samples:
            return b""
        # Code 7 (16-bit "blocksize - 1" after the frame number) suits any length 1..4096,
        # so the size arithmetic in audio_bytes() needs no special cases.
        n = self.full_frames
        header = self._last_prefix + _utf8_number(n) + (self.last_samples - 1).to_bytes(2, "big")
        header += bytes((crc8(header),))
        frame = header + self._body[: 1 + 2 * self.last_samples]
        return frame + crc16(frame).to_bytes(2, "big")

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return
        pos = start
        if pos < self._frames_start:
            yield self.header[pos:end]
            pos = min(end, self._frames_start)
        if pos >= end:
            return
        # Binary search for the frame that holds ``pos``; offsets are arithmetic.
        lo, hi = 0, self.full_frames
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._frame_offset(mid) <= pos:
                lo = mid
            else:
                hi = mid - 1
        yield from self._iter_frames(lo, pos - self._frame_offset(lo), end - pos)

    def _iter_frames(self, first: int, skip: int, remaining: int) -> Iterator[bytes]:
        # The hot loop: locals only, a handful of operations per 8 KiB frame.
        prefix = self._prefix
        body = self._body
        body_crc = self._body_crc
        hi_tab, lo_tab = _crc16_shift_tables(len(body))
        c8_start = _prefix_crc8(prefix)
        c16_start = _prefix_crc16(prefix)
        t8 = _CRC8
        t16 = _CRC16
        utf8 = _utf8_number
        parts: list[bytes] = []
        pending = -skip  # bytes collected in ``parts`` minus the part of the first frame to drop
        for n in range(first, self.full_frames):
            coded = utf8(n)
            c8 = c8_start
            c16 = c16_start
            for b in coded:
                c8 = t8[c8 ^ b]
                c16 = ((c16 << 8) & 0xFFFF) ^ t16[(c16 >> 8) ^ b]
            c16 = ((c16 << 8) & 0xFFFF) ^ t16[(c16 >> 8) ^ c8]
            c16 = body_crc ^ hi_tab[c16 >> 8] ^ lo_tab[c16 & 0xFF]
            parts.append(prefix + coded + bytes((c8,)))
            parts.append(body)
            parts.append(c16.to_bytes(2, "big"))
            pending += len(coded) + 8 + 2 * BLOCK_SIZE
            if pending >= CHUNK_SIZE or pending >= remaining:
                chunk = b"".join(parts)
                if skip:
                    chunk = chunk[skip:]
                    skip = 0
                if len(chunk) >= remaining:
                    yield chunk[:remaining]
                    return
                yield chunk
                remaining -= len(chunk)
                parts = []
                pending = 0
        parts.append(self._last)
        chunk = b"".join(parts)
        if skip:
            chunk = chunk[skip:]
        if chunk:
            yield chunk[:remaining]


@lru_cache(maxsize=128)
def _flac_body(cycles: int) -> tuple[bytes, int]:
    # Subframe header 0x02 (VERBATIM, no wasted bits), then big-endian samples.
    body = b"\x02" + struct.pack(f">{BLOCK_SIZE}h", *tone_samples(cycles))
    return body, crc16(body)


@lru_cache(maxsize=32)
def _prefix_crc8(prefix: bytes) -> int:
    return crc8(prefix)


@lru_cache(maxsize=32)
def _prefix_crc16(prefix: bytes) -> int:
    return crc16(prefix)


class WavFile(AudioFile):
    """A RIFF/WAVE file of 16-bit mono PCM, with an optional trailing ``junk`` chunk as filler.

    :param seed: selects the tone.
    :param sample_rate: samples per second.
    :param n_samples: number of samples.
    :param junk: payload bytes of a trailing ``junk`` chunk; ``None`` for no chunk.
    """

    audio_format = "wav"
    HEADER_SIZE = 44

    def __init__(self, seed: int, sample_rate: int, n_samples: int, junk: int | None = None) -> None:
        super().__init__(seed, sample_rate, n_samples)
        self.junk = junk
        data_size = 2 * n_samples
        trailer = b""
        if junk is not None:
            # The payload is zeros; an odd length without its pad byte is how a file gets an
            # odd size, and readers stop at end of file anyway.
            trailer = b"junk" + struct.pack("<I", junk) + bytes(junk)
        self.size = self.HEADER_SIZE + data_size + len(trailer)
        if self.size > MAX_WAV_BYTES:
            raise ValueError("WAV files are limited to 4 GiB")
        self.header = b"RIFF" + struct.pack("<I", self.size - 8) + b"WAVE"
        self.header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
        self.header += b"data" + struct.pack("<I", data_size)
        self._trailer = trailer
        self._data_end = self.HEADER_SIZE + data_size
        self._tile = _wav_tile(tone_cycles(seed))

    @classmethod
    def _fit(cls, seed: int, sample_rate: int, size_bytes: int) -> WavFile:
        budget = size_bytes - cls.HEADER_SIZE
        if budget % 2 == 0:
            return cls(seed, sample_rate, budget // 2)
        # An odd size needs an odd trailer: an 8-byte chunk header and one byte of payload.
        return cls(seed, sample_rate, (budget - 9) // 2, junk=1)

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return
        pos = start
        if pos < self.HEADER_SIZE:
            yield self.header[pos:end]
            pos = min(end, self.HEADER_SIZE)
        tile = self._tile
        period = 2 * BLOCK_SIZE
        data_stop = min(end, self._data_end)
        while pos < data_stop:
            at = (pos - self.HEADER_SIZE) % period
            take = min(data_stop - pos, len(tile) - at)
            yield tile[at : at + take]
            pos += take
        if pos < end:
            yield self._trailer[pos - self._data_end : end - self._data_end]


@lru_cache(maxsize=16)
def _wav_tile(cycles: int) -> bytes:
    # Whole periods of the block, a bit over one chunk, so any chunk is one slice of it.
    block = struct.pack(f"<{BLOCK_SIZE}h", *tone_samples(cycles))
    return block * (CHUNK_SIZE // len(block) + 1)


_FILE_CLASSES: dict[str, type[AudioFile]] = {"flac": FlacFile, "wav": WavFile}


def make_audio(
    seed: int,
    *,
    audio_format: str = "flac",
    sample_rate: int = 22050,
    size_bytes: int | None = None,
    duration_seconds: float = 1.0,
) -> AudioFile:
    """Build the layout of a generated file; cheap (no audio is produced until iterated).

    :param seed: selects the tone, usually the run ID.
    :param audio_format: ``"flac"`` or ``"wav"``.
    :param sample_rate: samples per second.
    :param size_bytes: exact file size; when given, ``duration_seconds`` is ignored.
    :param duration_seconds: length of the audio when no size is given (at least one sample).
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, not {audio_format!r}")
    kind = _FILE_CLASSES[audio_format]
    if size_bytes is not None:
        return kind.for_size(seed, sample_rate, size_bytes)
    return kind(seed, sample_rate, max(1, round(duration_seconds * sample_rate)))
