"""Which endpoint a request path names: the emulator's URL map.

The API lives under :data:`API_PREFIX`; generated files under :data:`FILES_ROOT` on the same
server (TTS audio under :data:`FILES_PREFIX`, every other kind's files under
``/files/<kind>/``).  The paths of the batch kinds come from
:mod:`airflow_provider_camb.hooks.result_kinds`, the provider's own table.
"""

from __future__ import annotations

import re

from airflow_provider_camb.hooks.result_kinds import RESULT_KINDS

#: Every batch kind's name, TTS first (``result_kinds.RESULT_KINDS`` order).
KIND_NAMES: tuple[str, ...] = tuple(RESULT_KINDS)

#: Endpoint name -> (kind, operation) for the batch endpoints; operation is ``create``,
#: ``status``, ``result`` or ``results``.
KIND_ENDPOINTS: dict[str, tuple[str, str]] = {}
for _kind in KIND_NAMES:
    KIND_ENDPOINTS[f"create_{_kind}"] = (_kind, "create")
    KIND_ENDPOINTS[f"{_kind}_status"] = (_kind, "status")
    KIND_ENDPOINTS[f"{_kind}_result"] = (_kind, "result")
    KIND_ENDPOINTS[f"{_kind}_results"] = (_kind, "results")

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
    *(name for name in KIND_ENDPOINTS if not name.startswith(("create_tts", "tts_"))),
)

API_PREFIX = "/apis"
FILES_ROOT = "/files/"
FILES_PREFIX = "/files/tts/"
#: The control API's root (served only by an emulator made with ``control=True``).
CONTROL_PREFIX = "/_emulator/"

#: File extensions the download path serves.
FILE_EXTENSIONS = ("flac", "wav", "mp4", "json")

_FIXED: dict[str, tuple[str, tuple[str, ...]]] = {
    "tts-stream": ("tts_stream", ("POST",)),
    "source-languages": ("source_languages", ("GET",)),
    "target-languages": ("target_languages", ("GET",)),
    "list-voices": ("list_voices", ("GET",)),
}
# ``/dub/{task_id}`` -> ("dub", "dubbing_status"), ``/dub-result/{run_id}`` likewise.
_WITH_PARAM: dict[str, tuple[str, tuple[str, ...]]] = {}
for _kind, _spec in RESULT_KINDS.items():
    _FIXED[_spec.create_path.strip("/")] = (f"create_{_kind}", ("POST",))
    _FIXED[_spec.bulk_path.strip("/")] = (f"{_kind}_results", ("POST",))
    _WITH_PARAM[_spec.status_path.strip("/").split("/")[0]] = (f"{_kind}_status", ("GET",))
    _WITH_PARAM[_spec.result_path.strip("/").split("/")[0]] = (f"{_kind}_result", ("GET", "HEAD"))

_TTS_FILE = re.compile(r"(\d+)\.(flac|wav)")
_KIND_FILE = re.compile(r"([a-z_]+)/(\d+)-([A-Za-z0-9_-]+)\.(" + "|".join(FILE_EXTENSIONS) + r")")


def route(path: str) -> tuple[str, list[str], tuple[str, ...]]:
    """Endpoint name, path parameters and allowed methods for ``path``.

    A download's parameters are ``[kind, run_id, file_name, extension]`` (``file_name`` is
    empty for TTS audio, whose path is ``/files/tts/<run_id>.<ext>``).

    :param path: the request path without the query string.
    """
    if path.startswith(FILES_ROOT):
        rest = path[len(FILES_ROOT) :]
        tts = _TTS_FILE.fullmatch(rest[len("tts/") :]) if rest.startswith("tts/") else None
        if tts:
            return "download", ["tts", tts.group(1), "", tts.group(2)], ("GET", "HEAD")
        match = _KIND_FILE.fullmatch(rest)
        if match and match.group(1) in KIND_NAMES and match.group(1) != "tts":
            return "download", list(match.groups()), ("GET", "HEAD")
        return "unknown", [], ()
    if not path.startswith(API_PREFIX + "/"):
        return "unknown", [], ()
    rest = path[len(API_PREFIX) + 1 :]
    if rest in _FIXED:
        name, methods = _FIXED[rest]
        return name, [], methods
    head, _, tail = rest.partition("/")
    if tail and "/" not in tail and head in _WITH_PARAM:
        name, methods = _WITH_PARAM[head]
        return name, [tail], methods
    return "unknown", [], ()


def check_endpoint(endpoint: str) -> None:
    """Raise ``ValueError`` unless ``endpoint`` is in :data:`ENDPOINTS` or is ``"*"``.

    :param endpoint: the name a caller gave.
    """
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS} or '*'")
