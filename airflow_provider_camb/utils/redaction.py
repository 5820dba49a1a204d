"""Making URLs safe to log. Pure functions: no Airflow, no I/O."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """Drop the query, fragment and credentials of a URL so a signed link can be logged.

    ``https://store/a.flac?X-Amz-Signature=...`` becomes ``https://store/a.flac?…``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    redacted = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return f"{redacted}?…" if parts.query else redacted


def scrub_secret(text: str, secret: str | None) -> str:
    """Replace every occurrence of ``secret`` in ``text`` (e.g. an API key echoed by a server)."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text
