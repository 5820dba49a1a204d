"""Reading back a list that a Jinja template rendered to text. Pure: no Airflow, no I/O."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def split_rendered_list(text: str) -> list[object]:
    """The items of a list as a template renders it without ``render_template_as_native_obj``.

    ``"[1, 2]"`` (JSON), ``"['a', 'b']"`` (Python's repr, parsed safely, never evaluated),
    ``"(1, 2)"``, ``"1,2"``, ``"1 2"`` and a lone ``"7"`` all work. Items are not validated here.
    """
    stripped = text.strip()
    if stripped.startswith(("[", "(")):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(stripped)
            except (ValueError, SyntaxError):
                continue
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
