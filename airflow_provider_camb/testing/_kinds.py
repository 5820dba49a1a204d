"""What each batch kind accepts when a task is created, which files its runs have, and the value
its result endpoints answer.  Pure: URLs are made by a callable the emulator passes in.

Every kind shares one life cycle (see :mod:`airflow_provider_camb.hooks.result_kinds`); only the
create body and the result value differ, and those differences live here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_camb.testing._audio import make_audio
from airflow_provider_camb.testing._multipart import Upload
from airflow_provider_camb.testing._validation import check_model, error, is_int

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_camb.testing._audio import AudioFile
    from airflow_provider_camb.testing._http import ServedFile

#: The value-shape switches and their choices, the default first.
VALUE_SHAPES: dict[str, tuple[str, ...]] = {
    "dubbing_value_shape": ("object", "per_language"),
    "transcription_value_shape": ("object", "list"),
}

#: Kinds whose create endpoint also takes a ``multipart/form-data`` body.
FORM_KINDS = ("transcription", "audio_separation", "stories")

#: The create body a seeded task or run pretends to have been made with.
DEFAULT_PAYLOADS: dict[str, dict[str, Any]] = {
    "tts": {"text": "Hello from the Camb.ai emulator.", "voice_id": 20298, "language": 1},
    "dubbing": {"video_url": "https://example.com/video.mp4", "source_language": 1, "target_language": 54},
    "translation": {"texts": ["Hello.", "How are you?"], "source_language": 1, "target_language": 54},
    "text_to_sound": {"prompt": "Rain on a tin roof", "duration": 1.0, "audio_type": "sound"},
    "transcription": {"language": 1, "media_url": "https://example.com/speech.wav"},
    "audio_separation": {"media_url": "https://example.com/song.wav"},
    "stories": {
        "text": "Once upon a time there was a tone. It played for one second. The end.",
        "source_language": 1,
        "narrator_voice_id": 20298,
    },
}

_TTS_OPTIONAL = {
    "gender": int,
    "age": int,
    "folder_id": int,
    "project_name": str,
    "project_description": str,
}
_TTS_LENGTHS = {"project_name": (3, 255), "project_description": (3, 5000)}

# Seconds each generated transcript line lasts.
_LINE_SECONDS = 1.5


@dataclass(frozen=True)
class Blob:
    """A small generated non-audio file (a dubbed video, a story's dialogue)."""

    data: bytes
    content_type: str

    @property
    def size(self) -> int:
        """Bytes in the file."""
        return len(self.data)

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes ``[start, end)``.

        :param start: first byte offset.
        :param end: one past the last byte; ``None`` for the end.
        """
        yield self.data[start:end]


def _mp4(run_id: int, slug: str) -> Blob:
    # An ``ftyp`` box and a ``free`` box: enough for `file` to say MP4; nobody plays it.
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    filler = f"camb-emulator dubbed video, run {run_id}, {slug}".encode()
    free = (8 + len(filler)).to_bytes(4, "big") + b"free" + filler
    return Blob(ftyp + free, "video/mp4")


# -- validation --------------------------------------------------------------------------------


def _is_language(value: Any) -> bool:
    # Language IDs are integers in JSON; a form sends every field as text.
    return is_int(value) or (isinstance(value, str) and value.strip() != "")


def _language_errors(payload: dict[str, Any], name: str, *, required: bool) -> list[dict[str, Any]]:
    if name not in payload or payload[name] is None:
        return [error("missing", ["body", name], "Field required")] if required else []
    if not _is_language(payload[name]):
        return [error("int_type", ["body", name], "Input should be a valid integer")]
    return []


def _media_errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    file, url = payload.get("media_file"), payload.get("media_url")
    if isinstance(file, Upload) or (isinstance(url, str) and url):
        return []
    if url is not None and not isinstance(url, str):
        return [error("string_type", ["body", "media_url"], "Input should be a valid string")]
    return [error("missing", ["body", "media_file"], "Field required (or give media_url)")]


def check_create(kind: str, payload: Any) -> list[dict[str, Any]]:
    """FastAPI-style errors for the create body of ``kind``; empty when it is acceptable.

    Light on purpose: the required fields and their types, not every constraint of the real API.

    :param kind: a kind name from :data:`~airflow_provider_camb.hooks.result_kinds.RESULT_KINDS`.
    :param payload: the parsed JSON body or form (uploads as :class:`Upload`).
    """
    if kind == "tts":
        return check_model(
            payload,
            required={"text": str, "voice_id": int, "language": int},
            optional=_TTS_OPTIONAL,
            lengths=_TTS_LENGTHS,
        )
    if not isinstance(payload, dict):
        return check_model(payload, required={}, optional={}, lengths={})
    errors: list[dict[str, Any]] = []
    if kind == "dubbing":
        errors += check_model(payload, required={"video_url": str}, optional={}, lengths={})
        errors += _language_errors(payload, "source_language", required=True)
        targets = payload.get("target_languages")
        if targets is not None:
            if not isinstance(targets, list) or not targets:
                errors.append(
                    error("list_type", ["body", "target_languages"], "Input should be a non-empty list")
                )
            else:
                errors += [
                    error("int_type", ["body", "target_languages", i], "Input should be a valid integer")
                    for i, value in enumerate(targets)
                    if not _is_language(value)
                ]
        else:
            errors += _language_errors(payload, "target_language", required=True)
    elif kind == "translation":
        texts = payload.get("texts")
        if texts is None:
            errors.append(error("missing", ["body", "texts"], "Field required"))
        elif not isinstance(texts, list) or not texts:
            errors.append(error("list_type", ["body", "texts"], "Input should be a non-empty list"))
        else:
            errors += [
                error("string_type", ["body", "texts", i], "Input should be a valid string")
                for i, value in enumerate(texts)
                if not isinstance(value, str)
            ]
        errors += _language_errors(payload, "source_language", required=True)
        errors += _language_errors(payload, "target_language", required=True)
    elif kind == "text_to_sound":
        errors += check_model(
            payload,
            required={"prompt": str},
            optional={"duration": float, "audio_type": str},
            lengths={"prompt": (1, 10_000)},
        )
    elif kind == "transcription":
        errors += _language_errors(payload, "language", required=True)
        errors += _media_errors(payload)
    elif kind == "audio_separation":
        errors += _media_errors(payload)
    elif kind == "stories":
        file, text = payload.get("file"), payload.get("text")
        if not isinstance(file, Upload) and not (isinstance(text, str) and text.strip()):
            errors.append(error("missing", ["body", "file"], "Field required (or give text)"))
        errors += _language_errors(payload, "source_language", required=True)
        voice = payload.get("narrator_voice_id")
        if voice is not None and not (is_int(voice) or (isinstance(voice, str) and voice.isdigit())):
            errors.append(error("int_type", ["body", "narrator_voice_id"], "Input should be a valid integer"))
    return errors


def audio_seconds(kind: str, payload: dict[str, Any], default: float) -> float:
    """How long the audio of a run created through the API lasts.

    :param kind: the kind.
    :param payload: its (valid) create body.
    :param default: the length when the body says nothing about it.
    """
    if kind == "tts":
        return max(0.5, min(60.0, len(payload["text"]) * 0.06))
    if kind == "text_to_sound" and payload.get("duration") is not None:
        return max(0.1, min(60.0, float(payload["duration"])))
    return default


# -- files and values --------------------------------------------------------------------------


def _slug(language: Any) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", str(language)) or "x"


def _targets(payload: dict[str, Any]) -> list[Any]:
    targets = payload.get("target_languages")
    return list(targets) if isinstance(targets, list) and targets else [payload.get("target_language")]


def _story_lines(payload: dict[str, Any]) -> list[str]:
    file = payload.get("file")
    text = file.data.decode("utf-8", "replace") if isinstance(file, Upload) else str(payload.get("text", ""))
    lines = [part.strip() for part in re.split(r"(?<=[.!?])\s+|\n+", text) if part.strip()]
    return lines[:50] or ["(empty story)"]


def transcript(lines: list[str], prefix: str = "") -> list[dict[str, Any]]:
    """Transcript items ``{start, end, text, speaker}`` (seconds), one per line.

    :param lines: the spoken lines.
    :param prefix: put before each line's text, e.g. ``"[es] "``.
    """
    return [
        {
            "start": round(i * _LINE_SECONDS, 3),
            "end": round((i + 1) * _LINE_SECONDS, 3),
            "text": prefix + line,
            "speaker": f"SPEAKER_{i % 2}",
        }
        for i, line in enumerate(lines)
    ]


def _spoken(run_id: int) -> list[str]:
    return [f"Hello from run {run_id}.", "This is the emulator speaking."]


def build_files(
    kind: str, run_id: int, payload: dict[str, Any], primary: AudioFile, audio_kwargs: dict[str, Any]
) -> dict[str, tuple[ServedFile, str]]:
    """The downloadable files of one run: file name -> (file, extension).

    :param kind: the kind.
    :param run_id: the run (it seeds the generated audio).
    :param payload: the create body.
    :param primary: the run's main audio file (already made).
    :param audio_kwargs: how ``primary`` was made, for any further audio files.
    """
    ext = primary.audio_format
    files: dict[str, tuple[ServedFile, str]] = {}
    if kind == "dubbing":
        for i, language in enumerate(_targets(payload)):
            slug = _slug(language)
            # Each language gets its own tone; the first doubles as the single-language result.
            audio = primary if i == 0 else make_audio(run_id + 100_000 * i, **audio_kwargs)
            files[f"audio-{slug}"] = (audio, ext)
            files[f"video-{slug}"] = (_mp4(run_id, slug), "mp4")
            if i == 0:
                files["audio"], files["video"] = files[f"audio-{slug}"], files[f"video-{slug}"]
    elif kind == "text_to_sound":
        files["output"] = (primary, ext)
    elif kind == "audio_separation":
        files["foreground_audio"] = (primary, ext)
        files["background_audio"] = (make_audio(run_id + 500_000, **audio_kwargs), ext)
    elif kind == "stories":
        files["audio"] = (primary, ext)
        dialogue = json.dumps({"transcript": transcript(_story_lines(payload))}, indent=2).encode()
        files["dialogue"] = (Blob(dialogue, "application/json"), "json")
    return files


def result_value(
    kind: str, run_id: int, payload: dict[str, Any], url: Callable[[str], str], shapes: dict[str, str]
) -> Any:
    """The value a result endpoint answers for one run of ``kind`` (not TTS).

    :param kind: the kind.
    :param run_id: the run.
    :param payload: the body the run was created with.
    :param url: makes a fresh signed URL for one of the run's file names.
    :param shapes: the value-shape switches (see :data:`VALUE_SHAPES`).
    """
    if kind == "dubbing":
        per_language = {
            str(language): {
                "audio_url": url(f"audio-{_slug(language)}"),
                "video_url": url(f"video-{_slug(language)}"),
                "transcript": transcript(_spoken(run_id), f"[{language}] "),
            }
            for language in _targets(payload)
        }
        if shapes["dubbing_value_shape"] == "per_language":
            return per_language
        return next(iter(per_language.values()))
    if kind == "translation":
        target = payload["target_language"]
        return {"texts": [f"[{target}] {text}" for text in payload["texts"]]}
    if kind == "text_to_sound":
        return {"output_url": url("output")}
    if kind == "transcription":
        items = transcript(_spoken(run_id))
        return items if shapes["transcription_value_shape"] == "list" else {"transcript": items}
    if kind == "audio_separation":
        return {
            "foreground_audio_url": url("foreground_audio"),
            "background_audio_url": url("background_audio"),
        }
    if kind == "stories":
        return {
            "audio_url": url("audio"),
            "dialogue_url": url("dialogue"),
            "transcript": transcript(_story_lines(payload)),
        }
    raise ValueError(f"no result value for kind {kind!r}")
