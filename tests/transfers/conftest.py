"""Fixtures for the transfer tests: instant download retries, DAG builders, and real object stores:
S3 on a moto server, GCS on gcp-storage-emulator, Azure Blob Storage on Azurite."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

from tests.transfers.storage_emulators import (
    AZURE_CONN_ID,
    GCS_CONN_ID,
    Azurite,
    GcsEmulator,
    running_azurite,
    running_gcs_emulator,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

MOTO_CONN_ID = "aws_moto"


@pytest.fixture(autouse=True)
def download_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the transfer's retry waits instead of sleeping."""
    from airflow_provider_camb.transfers._download import Recovery

    slept: list[float] = []

    def record(stop: object, seconds: float) -> bool:
        slept.append(seconds)
        return False

    monkeypatch.setattr(Recovery, "wait", staticmethod(record))
    return slept


@dataclass
class MotoS3:
    """A moto server speaking real S3 on 127.0.0.1, and a boto3 client for checking results."""

    endpoint_url: str
    client: Any

    def new_bucket(self) -> str:
        name = f"camb-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def sha256(self, bucket: str, key: str) -> str:
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def pending_uploads(self, bucket: str) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in answer.get("Uploads", [])]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """One moto server per session (Airflow caches an s3fs per connection ID, so the endpoint
    must not change between tests); the AWS connection ``aws_moto`` points at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env_name = f"AIRFLOW_CONN_{MOTO_CONN_ID.upper()}"
    os.environ[env_name] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": endpoint},
        }
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        yield MotoS3(endpoint, client)
    finally:
        os.environ.pop(env_name, None)
        server.stop()


@dataclass
class Backend:
    """One destination backend under test: where to write, and how to look at what landed."""

    name: str
    destination: str
    conn_id: str | None
    listing: Any  # () -> sorted list of every name under the destination (temp files included)
    digest: Any  # (name) -> sha256 hex

    def uri(self, name: str) -> str:
        if self.name == "file":
            return f"file://{self.destination.rstrip('/')}/{name}"
        return f"{self.destination.rstrip('/')}/{name}"


def local_backend(tmp_path: Path) -> Backend:
    folder = tmp_path / "out" / "audio"

    def listing() -> list[str]:
        if not folder.exists():
            return []
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    def digest(name: str) -> str:
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    return Backend("file", str(folder), None, listing, digest)


def s3_backend(moto_s3: MotoS3) -> Backend:
    bucket = moto_s3.new_bucket()
    prefix = "tts/audio"

    def listing() -> list[str]:
        return [key[len(prefix) + 1 :] for key in moto_s3.keys(bucket)] + [
            f"(pending upload) {key}" for key in moto_s3.pending_uploads(bucket)
        ]

    def digest(name: str) -> str:
        return moto_s3.sha256(bucket, f"{prefix}/{name}")

    return Backend("s3", f"s3://{bucket}/{prefix}/", MOTO_CONN_ID, listing, digest)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """One GCS emulator per session; ``gs://`` paths with ``conn_id="gcs_emulator"`` reach it."""
    with running_gcs_emulator(tmp_path_factory.mktemp("gcs-emulator")) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite per session; ``abfs://`` paths with ``conn_id="azurite"`` reach it."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


def gcs_backend(gcs: GcsEmulator) -> Backend:
    bucket = gcs.new_bucket()
    prefix = "tts/audio"

    def listing() -> list[str]:
        return [name[len(prefix) + 1 :] for name in gcs.names(bucket)] + [
            f"(open upload) {name}" for name in gcs.open_uploads(bucket)
        ]

    def digest(name: str) -> str:
        return hashlib.sha256(gcs.read(bucket, f"{prefix}/{name}")).hexdigest()

    return Backend("gs", f"gs://{bucket}/{prefix}/", GCS_CONN_ID, listing, digest)


def abfs_backend(azurite: Azurite) -> Backend:
    container = azurite.new_container()
    prefix = "tts/audio"

    def listing() -> list[str]:
        # Committed blobs only: the staged blocks of an aborted upload are never readable and are
        # left to Azure, which discards them after a week; what matters is that none of them was
        # committed, at the final name or any other.
        return [name[len(prefix) + 1 :] for name in azurite.names(container)]

    def digest(name: str) -> str:
        return hashlib.sha256(azurite.read(container, f"{prefix}/{name}")).hexdigest()

    return Backend("abfs", f"abfs://{container}/{prefix}/", AZURE_CONN_ID, listing, digest)


@pytest.fixture(params=["file", "s3", "gs", "abfs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each test using it runs against a local folder, S3 (moto), GCS (gcp-storage-emulator) and
    Azure Blob Storage (Azurite), each through the filesystem Airflow gives its scheme."""
    if request.param == "file":
        return local_backend(tmp_path)
    if request.param == "gs":
        return gcs_backend(request.getfixturevalue("gcs_emulator"))
    if request.param == "abfs":
        return abfs_backend(request.getfixturevalue("azurite"))
    return s3_backend(request.getfixturevalue("moto_s3"))


def transfer_dag(dag_id: str, **operator_kwargs: Any) -> Any:
    """A one-task DAG around CambTTSToStorageOperator (task_id ``transfer``)."""
    from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator
    from tests.airflow_support import one_task_dag

    return one_task_dag(dag_id, CambTTSToStorageOperator, "transfer", **operator_kwargs)


def execute(operator: Any) -> tuple[Any, mock.MagicMock]:
    """``operator.execute()`` with a mock task instance; ``(result, ti)``."""
    ti = mock.MagicMock()
    result = operator.execute({"ti": ti})
    return result, ti


def pushed(ti: mock.MagicMock) -> dict[str, Any]:
    """``key -> value`` of every XCom the mock task instance was given."""
    return {call.kwargs["key"]: call.kwargs["value"] for call in ti.xcom_push.call_args_list}


def unique_dag_id(request: pytest.FixtureRequest) -> str:
    return "xfer_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
