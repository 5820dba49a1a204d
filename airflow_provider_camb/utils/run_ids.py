"""Validating and chunking Camb.ai TTS run IDs. Pure functions: no Airflow, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable

from airflow_provider_camb.utils.rendered_values import materialise, positive_int, split_rendered_list

# POST /tts-results accepts 2 to 5 unique positive integers (RunIDsRequestPayload).
MIN_BULK_CHUNK = 2
MAX_BULK_CHUNK = 5


class InvalidRunIdsError(ValueError):
    """Run IDs that can never be valid; raised before any request is sent.

    :param bad_values: every offending input value, in input order.
    """

    def __init__(self, message: str, bad_values: list[object] | None = None) -> None:
        self.bad_values = bad_values or []
        super().__init__(message)


def parse_run_ids_text(text: str) -> list[str]:
    """Split what a Jinja template renders run IDs to without native rendering.

    Accepts ``"[1, 2, 3]"`` (a rendered list), ``"1,2,3"``, ``"1 2 3"`` and ``"7"``.
    """
    return [str(item) for item in split_rendered_list(text)]


def normalise_run_ids(values: object) -> list[int]:
    """Turn user input into unique positive integer run IDs, in first-seen order.

    Ints and numeric strings are accepted; bools, floats, zero, negatives and anything else are
    rejected, all at once, with a message naming every bad value.

    :param values: one run ID, or an iterable of them, or a string as a template renders a list.
    :raises InvalidRunIdsError: if any value is invalid or there is no run ID at all.
    """
    if isinstance(values, str):
        items: list[object] = list(parse_run_ids_text(values))
    elif isinstance(values, int) and not isinstance(values, bool):
        items = [values]
    elif isinstance(values, Iterable) and not isinstance(values, (bytes, dict)):
        items = materialise(values)
    else:
        raise InvalidRunIdsError(
            f"run_ids must be a run ID or a list of run IDs, got {type(values).__name__}: {values!r}",
            [values],
        )

    run_ids: dict[int, None] = {}
    bad: list[object] = []
    for item in items:
        run_id = positive_int(item)
        if run_id is None:
            bad.append(item)
        else:
            run_ids.setdefault(run_id, None)
    if bad:
        shown = ", ".join(repr(value) for value in bad)
        raise InvalidRunIdsError(f"Camb.ai run IDs must be positive integers; invalid: {shown}", bad)
    if not run_ids:
        raise InvalidRunIdsError("No Camb.ai run IDs were given.")
    return list(run_ids)


def plan_chunks(run_ids: list[int]) -> list[list[int]]:
    """Split run IDs into the fewest chunks the bulk endpoint accepts, each as even as possible.

    For N >= 2 that is ceil(N / 5) chunks of 2 to 5 IDs (6 -> 3+3, 11 -> 4+4+3): the API rejects
    a chunk of 1, so a remainder of one is never left over. A lone ID comes back as one chunk of
    one, which callers send to the single-run endpoint instead.
    """
    if not run_ids:
        return []
    count = math.ceil(len(run_ids) / MAX_BULK_CHUNK)
    base, extra = divmod(len(run_ids), count)
    chunks: list[list[int]] = []
    start = 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        chunks.append(run_ids[start : start + size])
        start += size
    return chunks
