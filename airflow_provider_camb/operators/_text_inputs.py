"""Reading the ``texts`` argument of the text-to-speech operator. Pure: no Airflow, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from airflow_provider_camb.speech.request import MIN_TEXT_CHARS
from airflow_provider_camb.utils.rendered_values import mapping_entries, parse_rendered_literal

#: The name a lone text gets when no ``name`` is given.
DEFAULT_NAME = "speech"
#: Characters of a text shown in logs and errors: enough to recognise it, not to leak a book.
PREVIEW_CHARS = 40


class InvalidTextsError(ValueError):
    """``texts`` can never be synthesised (empty, not text, too short); raised before any request."""


def preview(text: str) -> str:
    """``'It was a bright cold day in April, and t…'``: a text shortened for a log line."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…")


def parse_texts(texts: object, name: object = DEFAULT_NAME) -> dict[str, str]:
    """``{name: text}`` from what the operator was given, checking every entry at once.

    Accepts a mapping ``{name: text}``, a list of such mappings (a mapped upstream; names must
    not repeat), the string a template renders a mapping to (JSON or a Python literal, parsed
    safely, never evaluated), or one plain text, named ``name``.

    :raises InvalidTextsError: naming every problem.
    """
    entries = _entries(texts, name)
    problems: list[str] = []
    result: dict[str, str] = {}
    if not entries:
        raise InvalidTextsError("texts is empty: give {name: text} or a text")
    for key, text in entries:
        label = repr(key)
        if not isinstance(key, str) or not key.strip():
            problems.append(f"every text needs a non-empty name, got {key!r}")
            continue
        key = key.strip()
        if key in result:
            problems.append(f"the name {label} is given twice")
            continue
        if not isinstance(text, str):
            problems.append(f"text {label} must be a string, got {type(text).__name__}")
            continue
        if not text.strip():
            problems.append(f"text {label} is empty or only whitespace")
            continue
        if len(text.strip()) < MIN_TEXT_CHARS:
            problems.append(
                f"text {label} has {len(text.strip())} characters; Camb.ai needs at least {MIN_TEXT_CHARS}"
            )
            continue
        result[key] = text
    if problems:
        raise InvalidTextsError("invalid texts: " + "; ".join(problems))
    return result


def _entries(texts: object, name: object) -> list[tuple[object, object]]:
    if isinstance(texts, str):
        parsed = _parse_rendered_mapping(texts)
        if parsed is None:
            return [(name, texts)]
        texts = parsed
    entries = mapping_entries(texts)
    if entries is not None:
        return entries
    if texts is None:
        return []
    raise InvalidTextsError(f"texts must be a mapping {{name: text}} or one text, got {type(texts).__name__}")


def _parse_rendered_mapping(text: str) -> Mapping[object, object] | None:
    """The mapping a template rendered to text (``"{'ch1': '...'}"``), or ``None`` for prose."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    value = parse_rendered_literal(stripped)
    return value if isinstance(value, Mapping) else None
