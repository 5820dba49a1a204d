"""Local stand-ins for Google Cloud Storage and Azure Blob Storage, each in a process of its own.

* ``gs://``: gcp-storage-emulator (Python, in memory, see ``_gcs_emulator_server.py``), reached by
  the real gcsfs. The Google provider is not installed in the tests (see README), so the ``gs``
  scheme is attached to Airflow's ``ObjectStoragePath`` by hand, with the filesystem the provider's
  ``get_fs`` would build from a connection whose ``gcs.endpoint`` extra names the emulator.
* ``abfs://``: Azurite (Node, in memory), installed by ``make`` into ``.tools/node``, reached
  through an Airflow ``wasb`` connection read by the Azure provider's own ``get_fs`` (adlfs).

Both bind 127.0.0.1 on a port the system picks (port 0, read back from the server's first lines:
no window in which another process could take it), and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BLOB = REPO_ROOT / ".tools" / "node" / "node_modules" / ".bin" / "azurite-blob"

GCS_CONN_ID = "gcs_emulator"
AZURE_CONN_ID = "azurite"
#: Azurite's fixed development account and key (published in Azurite's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_START_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 5.0


def start_server(argv: list[str], ready: str, log_path: Path, *, cwd: Path | None = None) -> tuple[Any, str]:
    """Start ``argv`` and wait until its output matches the regex ``ready``.

    Output goes to ``log_path`` (a pipe nobody reads after start-up would fill and stall the
    server). On any failure to start the process is stopped before raising.

    :return: the process and the first group of the match (the address it listens on).
    """
    log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - the child keeps writing to it
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            # Its own session: a Ctrl-C in the terminal reaches pytest, which then stops it by PID.
            start_new_session=True,
        )
    finally:
        log.close()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        pattern = re.compile(ready)
        while True:
            match = pattern.search(log_path.read_text(errors="replace"))
            if match:
                return process, match.group(1)
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}: {log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start in {_START_TIMEOUT_SECONDS:.0f} s: {log_path}")
            time.sleep(0.05)
    except BaseException:
        stop_server(process)
        raise


def stop_server(process: Any) -> None:
    """SIGTERM the process by its PID, SIGKILL it if it is still there after a few seconds."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class GcsEmulator:
    """The GCS emulator, a gcsfs client on it, and the emulator's view of what was written."""

    endpoint_url: str
    fs: Any  # gcsfs.GCSFileSystem

    def new_bucket(self) -> str:
        name = f"camb-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        return name

    def names(self, bucket: str) -> list[str]:
        """Every object in ``bucket``, asked afresh (gcsfs caches listings)."""
        return sorted(name.split("/", 1)[1] for name in self.fs.find(bucket, refresh=True))

    def read(self, bucket: str, name: str) -> bytes:
        return bytes(self.fs.cat_file(f"{bucket}/{name}"))

    def open_uploads(self, bucket: str) -> list[str]:
        """Resumable uploads begun in ``bucket`` and neither finished nor cancelled."""
        import requests

        answer = requests.get(f"{self.endpoint_url}/_camb/resumable", timeout=10)
        answer.raise_for_status()
        return [name.split("/", 1)[1] for name in answer.json() if name.startswith(f"{bucket}/")]


def gcs_filesystem(endpoint_url: str) -> Any:
    """A gcsfs filesystem on the emulator, as the Google provider's ``get_fs`` makes one.

    ``gcsfs.core.GCSFileSystem`` rather than ``gcsfs.GCSFileSystem``: the latter is by default
    ``ExtendedGcsFileSystem``, which first asks the bucket's layout over gRPC (the storage control
    API, which the emulator does not speak: a 60 s timeout per bucket) before it falls back to the
    very same ``GCSFile`` writer for an ordinary bucket. ``token="anon"``: no credential lookup,
    so nothing ever asks a metadata server.
    """
    from gcsfs.core import GCSFileSystem

    # skip_instance_cache: a filesystem of its own, never one fsspec cached for another endpoint.
    return GCSFileSystem(
        endpoint_url=endpoint_url, token="anon", project="camb-tests", skip_instance_cache=True
    )


@dataclass
class Azurite:
    """Azurite's blob service, and an adlfs client on it for checking results."""

    connection_string: str
    fs: Any  # adlfs.AzureBlobFileSystem

    def new_container(self) -> str:
        name = f"camb-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        return name

    def names(self, container: str) -> list[str]:
        """Every committed blob in ``container``, asked afresh (adlfs caches listings)."""
        self.fs.invalidate_cache()
        return sorted(name.split("/", 1)[1] for name in self.fs.find(container))

    def read(self, container: str, name: str) -> bytes:
        return bytes(self.fs.cat_file(f"{container}/{name}"))

    def uncommitted_blobs(self, container: str) -> list[str]:
        """Blobs with staged blocks never committed: an upload left behind (invisible, but billed)."""
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        with service.get_container_client(container) as client:
            names = [blob.name for blob in client.list_blobs(include=["uncommittedblobs"])]
            return sorted(name for name in names if _staged_blocks(client, name))


def _staged_blocks(container_client: Any, name: str) -> list[Any]:
    _committed, uncommitted = container_client.get_blob_client(name).get_block_list("uncommitted")
    return list(uncommitted)


def azurite_binary() -> Path:
    """Azurite's blob server, installed by ``make``; fails on CI, skips elsewhere, if missing."""
    if AZURITE_BLOB.exists():
        return AZURITE_BLOB
    message = (
        f"Azurite is not installed ({AZURITE_BLOB} is missing): run `make pytest` (or `make test`), "
        "which installs it with npm into .tools/node."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def running_gcs_emulator(workspace: Path) -> Iterator[GcsEmulator]:
    """The GCS emulator, attached to ``ObjectStoragePath`` as ``gs`` with ``GCS_CONN_ID``.

    Airflow caches the filesystem per protocol and connection ID (``attach``), so one emulator
    must serve the whole session: a second one would never be reached through that ID.

    :param workspace: a folder for the emulator's log.
    """
    from airflow.sdk.io import attach

    script = Path(__file__).with_name("_gcs_emulator_server.py")
    process, address = start_server(
        [sys.executable, str(script), "--host", "127.0.0.1", "--port", "0"],
        r"listening on (127\.0\.0\.1:\d+)",
        workspace / "gcs-emulator.log",
    )
    try:
        endpoint = f"http://{address}"
        # From now on ObjectStoragePath("gs://...", conn_id=GCS_CONN_ID) resolves to this gcsfs.
        store = attach(protocol="gs", conn_id=GCS_CONN_ID, fs=gcs_filesystem(endpoint))
        yield GcsEmulator(endpoint, store.fs)
    finally:
        stop_server(process)


@contextlib.contextmanager
def running_azurite(workspace: Path) -> Iterator[Azurite]:
    """Azurite's blob service, with the ``wasb`` connection ``AZURE_CONN_ID`` pointing at it.

    The connection is what users write: a ``connection_string`` extra, read by the Azure
    provider's ``get_fs`` (adlfs), which Airflow caches per connection ID, hence one per session.

    :param workspace: Azurite's working folder (its log; nothing else with in-memory persistence).
    """
    from adlfs import AzureBlobFileSystem

    process, address = start_server(
        [
            str(azurite_binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--inMemoryPersistence",
            # Azurite would otherwise send usage data to Microsoft.
            "--disableTelemetry",
            # The installed azure-storage-blob may speak a newer API version than Azurite knows.
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        r"listens on http://(127\.0\.0\.1:\d+)",
        workspace / "azurite.log",
        cwd=workspace,
    )
    env_name = f"AIRFLOW_CONN_{AZURE_CONN_ID.upper()}"
    try:
        connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{address}/{AZURITE_ACCOUNT};"
        )
        os.environ[env_name] = json.dumps(
            {"conn_type": "wasb", "extra": {"connection_string": connection_string}}
        )
        checker = AzureBlobFileSystem(connection_string=connection_string, skip_instance_cache=True)
        yield Azurite(connection_string, checker)
    finally:
        os.environ.pop(env_name, None)
        stop_server(process)
