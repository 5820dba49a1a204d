"""Validating what the transfer operator is given. Pure: no Airflow, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_camb.hooks.result_values import result_urls
from airflow_provider_camb.utils.redaction import redact_url
from airflow_provider_camb.utils.rendered_values import NOT_A_LITERAL, mapping_entries, parse_rendered_literal
from airflow_provider_camb.utils.run_ids import InvalidRunIdsError, normalise_run_ids

if TYPE_CHECKING:
    from airflow_provider_camb.hooks.result_kinds import ResultKind


class InvalidTransferInputError(ValueError):
    """The operator's input can never work (bad run IDs, a URL map that is not one, a bad URL)."""


def check_download_url(url: object) -> str:
    """Return ``url`` stripped if it is an absolute ``http(s)`` URL with a host, else raise.

    Only http(s) is ever fetched: a ``file://`` or ``s3://`` "URL" from a template or a server
    would otherwise read local or private data into the destination.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidTransferInputError(f"expected a URL string, got {type(url).__name__}")
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidTransferInputError("the URL cannot be parsed") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidTransferInputError(
            f"only http(s) URLs are downloaded, not {parts.scheme or 'a scheme-less'!s} URL {redact_url(url)}"
        )
    if not host:
        raise InvalidTransferInputError(f"the URL {redact_url(url)} has no host")
    return url


def parse_urls(value: object) -> dict[int, str]:
    """Turn the ``urls`` argument into ``run_id -> URL``, checking every entry.

    Accepts the bulk operator's map ``{"<run_id>": "<url>"}`` (keys as strings or ints), a list
    of such maps (a mapped upstream task), or the string a template renders them to (JSON or a
    Python literal, parsed safely, never evaluated).

    :raises InvalidTransferInputError: naming every bad entry at once.
    """
    urls: dict[int, str] = {}
    problems: list[str] = []
    for key, url in _entries(value):
        try:
            (run_id,) = normalise_run_ids([key])
        except InvalidRunIdsError:
            problems.append(f"{key!r} is not a run ID (a positive integer)")
            continue
        try:
            checked = check_download_url(url)
        except InvalidTransferInputError as err:
            problems.append(f"run {run_id}: {err}")
            continue
        if run_id in urls and urls[run_id] != checked:
            problems.append(f"run {run_id} has two different URLs")
            continue
        urls[run_id] = checked
    if problems:
        raise InvalidTransferInputError("invalid urls: " + "; ".join(problems))
    return urls


def parse_result_urls(value: object, kind: ResultKind) -> dict[tuple[int, str], str]:
    """Turn the ``urls`` argument of a kind other than TTS into ``(run_id, field) -> URL``.

    Accepts ``CambBulkResultsOperator``'s output ``{"<run_id>": <result>}`` in the same forms as
    :func:`parse_urls`; every URL of a result is taken, as ``result_urls`` names it.

    :raises InvalidTransferInputError: naming every bad entry at once.
    """
    urls: dict[tuple[int, str], str] = {}
    problems: list[str] = []
    for key, result in _entries(value):
        try:
            (run_id,) = normalise_run_ids([key])
        except InvalidRunIdsError:
            problems.append(f"{key!r} is not a run ID (a positive integer)")
            continue
        fields = result_urls(kind, result)
        if not fields:
            problems.append(f"run {run_id}: its {kind.name} result has no URL")
            continue
        for field, url in fields.items():
            try:
                checked = check_download_url(url)
            except InvalidTransferInputError as err:
                problems.append(f"run {run_id} {field}: {err}")
                continue
            if urls.get((run_id, field), checked) != checked:
                problems.append(f"run {run_id} has two different {field}s")
                continue
            urls[run_id, field] = checked
    if problems:
        raise InvalidTransferInputError("invalid urls: " + "; ".join(problems))
    return urls


def _entries(value: object) -> list[tuple[object, object]]:
    """Every ``(run_id, url)`` pair, the maps of a mapped upstream kept apart (not merged), so a
    run that two maps give different URLs is reported instead of one URL silently winning."""
    if isinstance(value, str):
        value = _parse_text(value)
    entries = mapping_entries(value)
    if entries is not None:
        return entries
    raise InvalidTransferInputError(
        "urls must be a mapping {'<run_id>': '<url>'} (the CambBulkTTSResultsOperator output), "
        f"got {type(value).__name__}"
    )


def _parse_text(text: str) -> object:
    # A dict rendered by Jinja without native rendering: "{'1001': 'https://...'}".
    value = parse_rendered_literal(text)
    if value is NOT_A_LITERAL:
        raise InvalidTransferInputError(
            "urls is a string that is neither JSON nor a Python literal of a mapping"
        )
    return value
