"""The emulator's fixed catalogue: languages and voices, as the listing endpoints answer them."""

from __future__ import annotations

from typing import Any

SOURCE_LANGUAGES: list[dict[str, Any]] = [
    {"id": 1, "language": "English (United States)", "short_name": "en-us"},
    {"id": 2, "language": "English (United Kingdom)", "short_name": "en-uk"},
    {"id": 54, "language": "Spanish (Spain)", "short_name": "es-es"},
    {"id": 76, "language": "French (France)", "short_name": "fr-fr"},
    {"id": 31, "language": "German (Germany)", "short_name": "de-de"},
    {"id": 81, "language": "Hindi (India)", "short_name": "hi-in"},
]
TARGET_LANGUAGES: list[dict[str, Any]] = [
    *SOURCE_LANGUAGES,
    {"id": 87, "language": "Japanese (Japan)", "short_name": "ja-jp"},
    {"id": 139, "language": "Chinese (Mandarin, Simplified)", "short_name": "zh-cn"},
]
VOICES: list[dict[str, Any]] = [
    {
        "id": 20298,
        "voice_name": "Ava",
        "gender": 2,
        "age": 30,
        "language": 1,
        "description": "warm, narration",
    },
    {"id": 20299, "voice_name": "Noah", "gender": 1, "age": 35, "language": 1, "description": "calm, news"},
    {"id": 20300, "voice_name": "Lucia", "gender": 2, "age": 28, "language": 54, "description": "bright"},
    {"id": 20301, "voice_name": "Arjun", "gender": 1, "age": 40, "language": 81, "description": "deep"},
]

#: Locales ``POST /tts-stream`` knows, lowercase BCP-47 as the API wants them.
STREAM_LANGUAGES: tuple[str, ...] = tuple(lang["short_name"] for lang in TARGET_LANGUAGES)

#: The default model when a request names none.
DEFAULT_SPEECH_MODEL = "mars-8.1-flash-beta"

# Which locales each speech model speaks. The real table is not published; this one is small
# and plausible so a test can hit the "model does not support this locale" 422 on purpose:
# the 8.1 betas speak everything, mars-pro lacks the East Asian locales, mars-flash lacks
# Chinese, and mars-instruct is English only.
_EUROPEAN_AND_HINDI = ("en-us", "en-uk", "es-es", "fr-fr", "de-de", "hi-in")
MODEL_LANGUAGES: dict[str, tuple[str, ...]] = {
    "mars-8.1-flash-beta": STREAM_LANGUAGES,
    "mars-8.1-pro-beta": STREAM_LANGUAGES,
    "mars-flash": (*_EUROPEAN_AND_HINDI, "ja-jp"),
    "mars-pro": _EUROPEAN_AND_HINDI,
    "mars-instruct": ("en-us", "en-uk"),
}

#: Models that speak at 48 kHz by default; the others at 22.05 kHz.
PRO_MODELS = ("mars-8.1-pro-beta", "mars-pro")
