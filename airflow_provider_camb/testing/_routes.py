"""Which endpoint a request path names: the emulator's URL map.

The API lives under :data:`API_PREFIX`; audio files under :data:`FILES_PREFIX` on the same server.
"""

from __future__ import annotations

import re

#: Endpoint names accepted by the fault-injection methods and recorded in the journal.
ENDPOINTS = (
    "create_tts",
    "tts_status",
    "tts_result",
    "tts_results",
    "tts_stream",
    "source_languages",
    "target_languages",
    "list_voices",
    "download",
)

API_PREFIX = "/apis"
FILES_PREFIX = "/files/tts/"

_FIXED = {
    "tts": ("create_tts", ("POST",)),
    "tts-results": ("tts_results", ("POST",)),
    "tts-stream": ("tts_stream", ("POST",)),
    "source-languages": ("source_languages", ("GET",)),
    "target-languages": ("target_languages", ("GET",)),
    "list-voices": ("list_voices", ("GET",)),
}


def route(path: str) -> tuple[str, list[str], tuple[str, ...]]:
    """Endpoint name, path parameters and allowed methods for ``path``.

    :param path: the request path without the query string.
    """
    if path.startswith(FILES_PREFIX):
        match = re.fullmatch(r"(\d+)\.(flac|wav)", path[len(FILES_PREFIX) :])
        if match:
            return "download", [match.group(1), match.group(2)], ("GET", "HEAD")
        return "unknown", [], ()
    if not path.startswith(API_PREFIX + "/"):
        return "unknown", [], ()
    rest = path[len(API_PREFIX) + 1 :]
    if rest in _FIXED:
        name, methods = _FIXED[rest]
        return name, [], methods
    head, _, tail = rest.partition("/")
    if tail and "/" not in tail:
        if head == "tts":
            return "tts_status", [tail], ("GET",)
        if head == "tts-result":
            return "tts_result", [tail], ("GET", "HEAD")
    return "unknown", [], ()


def check_endpoint(endpoint: str) -> None:
    """Raise ``ValueError`` unless ``endpoint`` is in :data:`ENDPOINTS` or is ``"*"``.

    :param endpoint: the name a caller gave.
    """
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS} or '*'")
