"""gcp-storage-emulator, in memory, plus the one GCS call it lacks: cancelling a resumable upload.

Run as a script by ``tests/transfers/storage_emulators.py``::

    python _gcs_emulator_server.py --host 127.0.0.1 --port 0

It prints ``listening on <host>:<port>`` once the socket is bound (port 0: the system picks a free
one, so there is no race between choosing a port and binding it).

Why a wrapper and not ``python -m gcp_storage_emulator start``: the emulator answers ``DELETE`` on a
resumable upload session with 501. Real GCS cancels the session and answers 499, which gcsfs
treats as success (``gcsfs.retry.validate_response``); on 501 gcsfs retries with backoff, about
30 s per cancelled upload, and then raises. The cancel below does what GCS documents: the session
and its bytes are dropped, nothing becomes an object. ``GET /_camb/resumable`` lists the sessions
still open, so a test can check that an aborted write left no upload behind (the GCS twin of S3's
pending multipart uploads).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from types import SimpleNamespace
from typing import Any

from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.storage import RESUMABLE_DIR

# http.HTTPStatus has no 499; the emulator's Response only reads ``.value`` and ``.phrase``.
CLIENT_CLOSED_REQUEST = SimpleNamespace(value=499, phrase="Client Closed Request")


def cancel_resumable_upload(request: Any, response: Any, storage: Any) -> None:
    """``DELETE <session URI>``: drop the session and its bytes, as GCS does."""
    upload_id = request.query.get("upload_id", [None])[0]
    if upload_id is None or upload_id not in storage.resumable:
        response.status = server.HTTPStatus.NOT_FOUND
        return
    storage.delete_resumable_file_obj(upload_id)
    # No bytes to drop if no chunk had arrived yet.
    with contextlib.suppress(FileNotFoundError):
        storage._store.remove_file(storage._object_path(RESUMABLE_DIR, storage.safe_id(upload_id)))
    response.status = CLIENT_CLOSED_REQUEST


def list_resumable_uploads(request: Any, response: Any, storage: Any) -> None:
    """``GET /_camb/resumable``: the object names of the resumable uploads still open."""
    response.json(sorted(f"{obj['bucket']}/{obj['name']}" for obj in storage.resumable.values()))


def install_extensions() -> None:
    for _regex, handlers in server.HANDLERS:
        if handlers.get(server.POST) is objects.insert:  # the /upload/storage/v1/b/<bucket>/o route
            handlers[server.DELETE] = cancel_resumable_upload
    # First: the catch-all public route /<bucket>/<object> would swallow it otherwise.
    server.HANDLERS = ((r"^/_camb/resumable$", {server.GET: list_resumable_uploads}), *server.HANDLERS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    install_extensions()
    emulator = server.create_server(args.host, args.port, in_memory=True)
    emulator.start()
    host, port = emulator._api._httpd.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
