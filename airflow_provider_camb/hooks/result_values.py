"""Reading one run's result as the API documents it, per kind. Pure: no Airflow, no I/O.

Each reader turns one value of a bulk answer (or a single-result answer) into the provider's
JSON-safe shape, or says why it cannot: ``(value, None)`` or ``(None, reason)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_camb.hooks.result_kinds import ResultKind

Reading = tuple[Any, str | None]


def read_value(kind: ResultKind, value: Any) -> Reading:
    """One run's result of ``kind``, checked; see each kind's reader for the shape.

    :param kind: the run's kind.
    :param value: what the API answered for the run.
    """
    if value is None:
        return None, "the API returned no URL" if kind.url_fields else "the API returned no result"
    reason = _api_reason(value)
    reading = _READERS[kind.name](value)
    if reading[0] is None and reason is not None:
        return None, reason
    return reading


def url_of(value: Any) -> Reading:
    """A URL: ``"<url>"`` or ``{"output_url": "<url>"}`` (both documented for TTS and sound)."""
    if isinstance(value, str) and value.strip():
        return value.strip(), None
    if isinstance(value, Mapping):
        url = value.get("output_url")
        if isinstance(url, str) and url.strip():
            return url.strip(), None
    return None, f"unexpected value {_shorten(value)}"


def _fields(*required: str) -> Callable[[Any], Reading]:
    """A reader of an object that must carry ``required`` URL fields (others are kept)."""

    def read(value: Any) -> Reading:
        if not isinstance(value, Mapping):
            return None, f"expected an object with {', '.join(required)}, got {_shorten(value)}"
        absent = [name for name in required if not _is_url(value.get(name))]
        if absent:
            return None, f"no {', '.join(absent)} in {_shorten(value)}"
        return dict(value), None

    return read


def _dubbing(value: Any) -> Reading:
    """``{audio_url, video_url?, transcript}``, or a map language -> that (several languages)."""
    if isinstance(value, Mapping) and _is_url(value.get("audio_url")):
        return dict(value), None
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(item, Mapping) and _is_url(item.get("audio_url")) for item in value.values())
    ):
        return {str(language): dict(item) for language, item in value.items()}, None
    return None, f"no audio_url in {_shorten(value)}"


def _translation(value: Any) -> Reading:
    """``{"texts": [str, ...]}`` -> the texts."""
    texts = value.get("texts") if isinstance(value, Mapping) else None
    if isinstance(texts, list) and all(isinstance(text, str) for text in texts):
        return list(texts), None
    return None, f"no texts in {_shorten(value)}"


def _transcription(value: Any) -> Reading:
    """``{"transcript": [...]}`` (the SDK) or a bare list (the spec): the list either way."""
    items = value.get("transcript") if isinstance(value, Mapping) else value
    if isinstance(items, list):
        return list(items), None
    return None, f"no transcript in {_shorten(value)}"


_READERS: dict[str, Callable[[Any], Reading]] = {
    "tts": url_of,
    "text_to_sound": url_of,
    "dubbing": _dubbing,
    "translation": _translation,
    "transcription": _transcription,
    "audio_separation": _fields("foreground_audio_url", "background_audio_url"),
    "stories": _fields("audio_url"),
}


def result_urls(kind: ResultKind, value: Any) -> dict[str, str]:
    """Every downloadable URL of a read result, by field (``{"audio_url": ..., "video_url": ...}``).

    A per-language dubbing result gives ``{"<lang>_audio_url": ...}``; kinds without files
    (translation, transcription) give nothing.
    """
    if isinstance(value, str):
        return {"output_url": value}
    if not isinstance(value, Mapping):
        return {}
    if kind.name == "dubbing" and "audio_url" not in value:
        return {
            f"{language}_{field}": url
            for language, item in value.items()
            for field, url in result_urls(kind, item).items()
        }
    return {field: value[field] for field in kind.url_fields if _is_url(value.get(field))}


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def _api_reason(value: Any) -> str | None:
    if isinstance(value, Mapping):
        for key in ("detail", "error", "message", "status"):
            if value.get(key) and isinstance(value.get(key), str):
                return str(value[key])
    return None


def _shorten(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
