"""Reading back values a Jinja template rendered to text (lists, mappings, numbers, ``None``),
and the lists a mapped upstream hands over. Pure: no Airflow, no I/O."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

#: What :func:`parse_rendered_literal` answers for text that is neither JSON nor a literal.
NOT_A_LITERAL = object()


def parse_rendered_literal(text: str) -> object:
    """The JSON or Python literal a template rendered a value to (``"{'a': 1}"``, ``"[1, 2]"``),
    parsed safely, never evaluated; :data:`NOT_A_LITERAL` when it is neither."""
    stripped = text.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return NOT_A_LITERAL


def mapping_entries(value: object) -> list[tuple[object, object]] | None:
    """The ``(key, value)`` pairs of a mapping, or of a list of mappings (a mapped upstream's
    outputs, kept apart so a key given twice is seen twice); ``None`` for anything else."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        items = materialise(value)
        if all(isinstance(item, Mapping) for item in items):
            return [pair for item in items for pair in item.items()]
    return None


def is_missing(value: object) -> bool:
    """``None``, or what a template renders a missing value to (``""``, ``"None"``)."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def whole_number(value: object) -> int | None:
    """An int from an int or the digits a template renders one to; ``None`` otherwise.

    bool is an int subclass, and ``True`` would silently become 1: it is refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def positive_int(value: object) -> int | None:
    """:func:`whole_number`, and only if it is above zero."""
    number = whole_number(value)
    return number if number is not None and number > 0 else None


def split_rendered_list(text: str) -> list[object]:
    """The items of a list as a template renders it without ``render_template_as_native_obj``.

    ``"[1, 2]"`` (JSON), ``"['a', 'b']"`` (Python's repr, parsed safely, never evaluated),
    ``"(1, 2)"``, ``"1,2"``, ``"1 2"`` and a lone ``"7"`` all work. Items are not validated here.
    """
    stripped = text.strip()
    if stripped.startswith(("[", "(")):
        parsed = parse_rendered_literal(stripped)
        if isinstance(parsed, (list, tuple)):
            return list(parsed)
        stripped = stripped.strip("[]()")
    return [part.strip("'\" ") for part in stripped.replace(",", " ").split() if part.strip("'\" ")]


def materialise(values: Iterable[T]) -> list[T]:
    """The items of a list, a tuple or a lazy XCom sequence (a mapped upstream's output), read once.

    A lazy sequence knows its length and hands out a slice in one request; iterating it instead
    probes one index past the end, which Airflow logs as ``XCom not found ... offset=N`` at ERROR.
    """
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        return list(values[:])
    return list(values)
