"""``POST /tts-stream``: what a request may say (FastAPI-style 422s) and the audio streamed back.

The answer is real audio of the requested format, as long as the text asks for, sent with
``Transfer-Encoding: chunked`` like the real endpoint, which does not know its length up front.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from airflow_provider_camb.testing import _mp3
from airflow_provider_camb.testing._audio import WavFile, make_audio
from airflow_provider_camb.testing._catalogue import (
    DEFAULT_SPEECH_MODEL,
    MODEL_LANGUAGES,
    PRO_MODELS,
    STREAM_LANGUAGES,
)
from airflow_provider_camb.testing._http import Response
from airflow_provider_camb.testing._validation import check_model, enum_message, error, is_int, validation

#: Every ``output_configuration.format`` the real API accepts.
API_FORMATS = (
    "wav",
    "flac",
    "adts",
    "mp3",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_s32le",
    "pcm_s32be",
    "pcm_f32le",
    "pcm_f32be",
)
#: The formats the emulator produces; the others answer 422 rather than mislabelled bytes.
STREAM_FORMATS = ("wav", "flac", "mp3", "pcm_s16le")
#: The ``speech_model`` values the API accepts.
SPEECH_MODELS = tuple(MODEL_LANGUAGES)
#: The only model that takes ``user_instructions``.
INSTRUCT_MODEL = "mars-instruct"

_CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "pcm_s16le": "application/octet-stream",
}
# The generated files' limits (FLAC's rate field is 20 bits); real voices stay well inside.
_RATE_RANGE = (8000, 192000)
_FORMAT_LOC: list[str | int] = ["body", "output_configuration", "format"]
_RATE_LOC: list[str | int] = ["body", "output_configuration", "sample_rate"]


@dataclass(frozen=True)
class _StreamRequest:
    text: str
    audio_format: str
    sample_rate: int


def answer(payload: Any, seconds_per_char: float) -> Response:
    """The answer to one ``POST /tts-stream`` body: a 422 listing what is wrong, or the audio.

    :param payload: the parsed JSON body.
    :param seconds_per_char: seconds of audio per character of ``text``.
    """
    parsed = _parse(payload)
    if isinstance(parsed, list):
        return validation(parsed)
    text = parsed.text
    # Seeded by the text, so the same sentence always sounds (and hashes) the same.
    seed = zlib.crc32(text.encode())
    duration = len(text) * seconds_per_char
    headers = [("X-Credits-Required", str(len(text)))]
    content_type = _CONTENT_TYPES[parsed.audio_format]
    if parsed.audio_format == "mp3":
        n_samples = max(1, round(duration * parsed.sample_rate))
        body = _mp3.encode(seed, parsed.sample_rate, n_samples)
        return Response(200, body, content_type=content_type, headers=headers, chunked=True)
    # pcm_s16le is the WAV generator's data section without its header.
    file_format = "wav" if parsed.audio_format == "pcm_s16le" else parsed.audio_format
    audio = make_audio(
        seed, audio_format=file_format, sample_rate=parsed.sample_rate, duration_seconds=duration
    )
    start = WavFile.HEADER_SIZE if parsed.audio_format == "pcm_s16le" else 0
    return Response(
        200,
        content_type=content_type,
        headers=headers,
        audio=audio,
        start=start,
        end=audio.size,
        chunked=True,
    )


def _parse(payload: Any) -> _StreamRequest | list[dict[str, Any]]:
    errors = check_model(
        payload,
        required={"text": str, "language": str, "voice_id": int},
        optional={
            "speech_model": str,
            "user_instructions": str,
            "enhance_named_entities_pronunciation": bool,
            "output_configuration": dict,
            "voice_settings": dict,
            "inference_options": dict,
        },
        lengths={"text": (3, 3000), "user_instructions": (3, 1000)},
    )
    if not isinstance(payload, dict):
        return errors
    errors.extend(_field_errors(payload))
    config = payload.get("output_configuration")
    if isinstance(config, dict):
        errors.extend(_output_errors(config))
    if errors:
        # Like a pydantic "after" model validator, the cross-field checks run only on valid fields.
        return errors
    model = payload.get("speech_model") or DEFAULT_SPEECH_MODEL
    errors = _pairing_errors(payload, model)
    if errors:
        return errors
    config = config or {}
    sample_rate = config.get("sample_rate")
    if sample_rate is None:
        # The pro models speak at 48 kHz, the others at 22.05 kHz (see the API reference notes).
        sample_rate = 48000 if model in PRO_MODELS else 22050
    return _StreamRequest(payload["text"], config.get("format") or "wav", sample_rate)


def _field_errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    # Value checks on fields whose type check_model has already accepted.
    errors = []
    voice_id = payload.get("voice_id")
    if is_int(voice_id) and voice_id < 1:
        errors.append(
            error("greater_than_equal", ["body", "voice_id"], "Input should be greater than or equal to 1")
        )
    language = payload.get("language")
    if isinstance(language, str) and language not in STREAM_LANGUAGES:
        # Lowercase only, as the API wants: "EN-US" is not "en-us".
        errors.append(error("enum", ["body", "language"], enum_message(STREAM_LANGUAGES)))
    model = payload.get("speech_model")
    if isinstance(model, str) and model not in SPEECH_MODELS:
        errors.append(error("enum", ["body", "speech_model"], enum_message(SPEECH_MODELS)))
    return errors


def _output_errors(config: dict[str, Any]) -> list[dict[str, Any]]:
    errors = check_model(
        config,
        required={},
        optional={"format": str, "sample_rate": int, "apply_enhancement": bool, "duration": float},
        lengths={},
        loc=("body", "output_configuration"),
    )
    audio_format = config.get("format")
    if isinstance(audio_format, str):
        if audio_format not in API_FORMATS:
            errors.append(error("enum", _FORMAT_LOC, enum_message(API_FORMATS)))
        elif audio_format not in STREAM_FORMATS:
            errors.append(
                error(
                    "value_error",
                    _FORMAT_LOC,
                    f"Value error, the emulator cannot produce {audio_format!r};"
                    f" it produces {_or_list(STREAM_FORMATS)}",
                )
            )
        elif audio_format == "mp3" and (reason := _mp3.unavailable()) is not None:
            errors.append(error("value_error", _FORMAT_LOC, f"Value error, {reason}"))
    sample_rate = config.get("sample_rate")
    if is_int(sample_rate):
        low, high = _RATE_RANGE
        if not low <= sample_rate <= high:
            errors.append(
                error(
                    "value_error",
                    _RATE_LOC,
                    f"Value error, the emulator produces {low} to {high} Hz, not {sample_rate}",
                )
            )
        elif audio_format == "mp3" and sample_rate not in _mp3.MP3_SAMPLE_RATES:
            rates = ", ".join(str(rate) for rate in _mp3.MP3_SAMPLE_RATES)
            errors.append(
                error(
                    "value_error",
                    _RATE_LOC,
                    f"Value error, mp3 carries only {rates} Hz, not {sample_rate}",
                )
            )
    return errors


def _pairing_errors(payload: dict[str, Any], model: str) -> list[dict[str, Any]]:
    errors = []
    language = payload["language"]
    supported = MODEL_LANGUAGES[model]
    if language not in supported:
        errors.append(
            error(
                "value_error",
                ["body", "language"],
                f"Value error, {model} does not support {language!r}; it supports {_or_list(supported)}",
            )
        )
    if payload.get("user_instructions") is not None and model != INSTRUCT_MODEL:
        errors.append(
            error(
                "value_error",
                ["body", "user_instructions"],
                f"Value error, user_instructions is only supported by {INSTRUCT_MODEL}, not by {model}",
            )
        )
    return errors


def _or_list(values: tuple[str, ...]) -> str:
    # "'a', 'b' or 'c'", the way pydantic lists choices.
    return enum_message(values).removeprefix("Input should be ")
