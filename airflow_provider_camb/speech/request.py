"""The body of a ``POST /tts-stream`` request, validated before anything is sent. Pure: no I/O.

Every problem is found at once and named, so a DAG author fixes them in one go, and nothing is
paid for a request the API would reject anyway.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_camb.utils.rendered_values import (
    NOT_A_LITERAL,
    is_missing,
    parse_rendered_literal,
    positive_int,
)

#: The formats the provider can join into one file (the API streams a few more).
OUTPUT_FORMATS = ("flac", "wav", "mp3")
#: ``speech_model`` values the API accepts.
SPEECH_MODELS = ("mars-8.1-flash-beta", "mars-8.1-pro-beta", "mars-flash", "mars-pro", "mars-instruct")
#: The only model that takes ``user_instructions``.
INSTRUCT_MODEL = "mars-instruct"
MIN_TEXT_CHARS = 3
MAX_TEXT_CHARS = 3000
USER_INSTRUCTIONS_CHARS = (3, 1000)
SAMPLE_RATES = (8000, 192000)

# Lowercase BCP-47 as the API wants it: a 2-3 letter language, then subtags (en-us, zh-cn, es-419).
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")


class InvalidTTSRequestError(ValueError):
    """Arguments the API would reject (or that make no sense); raised before any request.

    :param problems: one readable sentence per problem.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class TTSStreamRequest:
    """Everything of a ``POST /tts-stream`` body except the text: one voice, language, model, format.

    Build it with :meth:`create`, which validates and normalises; :meth:`payload` adds a text.
    """

    voice_id: int
    language: str
    output_format: str = "flac"
    speech_model: str | None = None
    sample_rate: int | None = None
    voice_settings: dict[str, Any] | None = field(default=None, hash=False)
    inference_options: dict[str, Any] | None = field(default=None, hash=False)
    user_instructions: str | None = None
    enhance_named_entities_pronunciation: bool | None = None

    @classmethod
    def create(
        cls,
        *,
        voice_id: object,
        language: object = "en-us",
        output_format: object = "flac",
        speech_model: object = None,
        sample_rate: object = None,
        voice_settings: object = None,
        inference_options: object = None,
        user_instructions: object = None,
        enhance_named_entities_pronunciation: object = None,
    ) -> TTSStreamRequest:
        """A checked request; values rendered by a template as text (``"20298"``, ``"{...}"``) work.

        :raises InvalidTTSRequestError: naming every bad argument.
        """
        problems: list[str] = []
        voice = positive_int(voice_id)
        if voice is None:
            problems.append(
                f"voice_id must be a positive whole number (a Camb.ai voice ID), got {voice_id!r}"
            )
        lang = language.strip().lower() if isinstance(language, str) else ""
        if not _LANGUAGE.fullmatch(lang):
            problems.append(
                f"language must be a BCP-47 tag such as 'en-us' or 'fr-fr', got {language!r}"
                + (" (use '-', not '_')" if isinstance(language, str) and "_" in language else "")
            )
        fmt = output_format.strip().lower() if isinstance(output_format, str) else output_format
        if fmt not in OUTPUT_FORMATS:
            problems.append(
                f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}"
            )
        model = None if is_missing(speech_model) else str(speech_model).strip()
        if model is not None and model not in SPEECH_MODELS:
            problems.append(f"speech_model must be one of {', '.join(SPEECH_MODELS)}, got {speech_model!r}")
        rate = None
        if not is_missing(sample_rate):
            rate = positive_int(sample_rate)
            if rate is None or not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
                problems.append(
                    f"sample_rate must be a whole number of Hz from {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]}, "
                    f"got {sample_rate!r}"
                )
        settings = _optional_mapping(voice_settings, "voice_settings", problems)
        options = _optional_mapping(inference_options, "inference_options", problems)
        instructions = None if is_missing(user_instructions) else user_instructions
        if instructions is not None and not isinstance(instructions, str):
            problems.append(f"user_instructions must be text, got {type(instructions).__name__}")
        elif instructions is not None:
            instructions = instructions.strip()
            low, high = USER_INSTRUCTIONS_CHARS
            if not low <= len(instructions) <= high:
                problems.append(
                    f"user_instructions must have {low} to {high} characters, got {len(instructions)}"
                )
            if model != INSTRUCT_MODEL:
                problems.append(f"user_instructions only work with speech_model={INSTRUCT_MODEL!r}")
        enhance = (
            None if is_missing(enhance_named_entities_pronunciation) else enhance_named_entities_pronunciation
        )
        if isinstance(enhance, str) and enhance.strip().lower() in ("true", "false"):
            enhance = enhance.strip().lower() == "true"
        if enhance is not None and not isinstance(enhance, bool):
            problems.append(f"enhance_named_entities_pronunciation must be true or false, got {enhance!r}")
        if problems:
            raise InvalidTTSRequestError(problems)
        return cls(
            voice_id=voice,  # type: ignore[arg-type]
            language=lang,
            output_format=str(fmt),
            speech_model=model,
            sample_rate=rate,
            voice_settings=settings,
            inference_options=options,
            user_instructions=instructions if isinstance(instructions, str) else None,
            enhance_named_entities_pronunciation=enhance,  # type: ignore[arg-type]
        )

    def payload(self, text: str, output_format: str | None = None) -> dict[str, Any]:
        """The JSON body for ``text``, spelled as the API spells it; ``None`` fields left out.

        :param text: 3 to 3,000 characters.
        :param output_format: the format to ask for, if not this request's own.
        :raises InvalidTTSRequestError: for a text outside the API's limits.
        """
        return self._body(check_text(text), output_format)

    def _body(self, text: str, output_format: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "voice_id": self.voice_id, "language": self.language}
        if self.speech_model is not None:
            body["speech_model"] = self.speech_model
        # The API's default format differs between its spec and its SDK: always say it.
        config: dict[str, Any] = {"format": output_format or self.output_format}
        if self.sample_rate is not None:
            config["sample_rate"] = self.sample_rate
        body["output_configuration"] = config
        for name in ("voice_settings", "inference_options", "user_instructions"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.enhance_named_entities_pronunciation is not None:
            body["enhance_named_entities_pronunciation"] = self.enhance_named_entities_pronunciation
        return body

    def cache_key(self, text: str, output_format: str | None = None) -> str:
        """A digest of everything that determines the audio of ``text``: equal keys, equal audio.

        :param text: the text (of any length: a whole text keys its staging place).
        :param output_format: the format asked for, if not this request's own.
        """
        canonical = json.dumps(self._body(text, output_format), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def check_text(text: object) -> str:
    """``text`` if the API takes it in one request (3 to 3,000 characters), else raise.

    :raises InvalidTTSRequestError: naming the limit.
    """
    if not isinstance(text, str):
        raise InvalidTTSRequestError([f"a text must be a string, got {type(text).__name__}"])
    if not MIN_TEXT_CHARS <= len(text) <= MAX_TEXT_CHARS:
        raise InvalidTTSRequestError(
            [f"one request takes {MIN_TEXT_CHARS} to {MAX_TEXT_CHARS} characters of text, got {len(text)}"]
        )
    return text


def _optional_mapping(value: object, name: str, problems: list[str]) -> dict[str, Any] | None:
    if is_missing(value):
        return None
    if isinstance(value, str):
        # A mapping rendered without native rendering reads "{'speaking_rate': 1.1}": not JSON.
        parsed = parse_rendered_literal(value)
        if parsed is NOT_A_LITERAL:
            problems.append(f"{name} must be a mapping (or its JSON), got {value!r}")
            return None
        value = parsed
    if not isinstance(value, Mapping):
        problems.append(f"{name} must be a mapping, got {type(value).__name__}")
        return None
    return dict(value)
