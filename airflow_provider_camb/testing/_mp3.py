"""MP3 for ``POST /tts-stream``, encoded by libsndfile through ``soundfile``.

The rest of the emulator is standard library only; ``soundfile`` (and ``numpy``) are imported
here, inside the functions, and only when a client asks for MP3.  Without them MP3 requests
answer 422 instead of bytes that only pretend to be MP3.
"""

from __future__ import annotations

import io
from functools import lru_cache

from airflow_provider_camb.testing._audio import WavFile

#: The sample rates MPEG-1/2/2.5 layer III can carry.
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def unavailable() -> str | None:
    """Why this process cannot encode MP3, or ``None`` when it can."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the package is there but libsndfile is not
        return "the emulator needs the soundfile package to produce mp3 (pip install soundfile)"
    if "MP3" not in soundfile.available_formats():
        return (
            "the emulator needs soundfile with libsndfile 1.1 or later to produce mp3"
            f" (this one has libsndfile {soundfile.__libsndfile_version__})"
        )
    return None


# A test tends to ask for the same sentence many times; encoding is cheap but not free.
@lru_cache(maxsize=4)
def encode(seed: int, sample_rate: int, n_samples: int) -> bytes:
    """The emulator's tone for ``seed`` as a mono MP3 of ``n_samples`` samples.

    Call :func:`unavailable` first; this raises ``ImportError`` without ``soundfile``.

    :param seed: selects the tone, as for the WAV and FLAC files.
    :param sample_rate: one of :data:`MP3_SAMPLE_RATES`.
    :param n_samples: length in samples, at least 1.
    """
    import numpy as np
    import soundfile

    # The WAV generator's data section is the tone as 16-bit little-endian samples: the MP3
    # carries exactly what a WAV or FLAC of the same request would.
    wav = WavFile(seed, sample_rate, n_samples)
    samples = np.frombuffer(b"".join(wav.iter_bytes(WavFile.HEADER_SIZE, wav.size)), dtype="<i2")
    out = io.BytesIO()
    soundfile.write(out, samples, sample_rate, format="MP3")
    return out.getvalue()
