"""Whole-or-nothing writes to ``abfs://`` through the Azure provider's filesystem (adlfs), against
Azurite.

The operators' runs on ``abfs://`` are in the shared backend tests (the ``backend`` fixture) and in
``test_text_to_speech_object_stores.py``; here, the writer itself, block by block.
"""

from __future__ import annotations

import gc
from unittest import mock

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_camb.storage import sinks as _sinks
from airflow_provider_camb.storage.sinks import existing_size, open_atomic
from tests.transfers.storage_emulators import AZURE_CONN_ID, AZURITE_ACCOUNT

MiB = 2**20


@pytest.fixture
def container(azurite):
    return azurite.new_container()


def abfs_path(container: str, name: str) -> ObjectStoragePath:
    return ObjectStoragePath(f"abfs://{container}/{name}", conn_id=AZURE_CONN_ID)


def test_the_wasb_connection_gives_abfs_paths_the_providers_adlfs_filesystem(azurite, container):
    from adlfs import AzureBlobFileSystem

    fs = abfs_path(container, "tts/1.flac").fs
    # Built by airflow.providers.microsoft.azure.fs.adls.get_fs from the connection's extra.
    assert isinstance(fs, AzureBlobFileSystem)
    assert fs.connection_string == azurite.connection_string
    assert fs.service_client.account_name == AZURITE_ACCOUNT


def test_a_file_is_committed_where_it_is_written_without_a_copy(azurite, container):
    target = abfs_path(container, "tts/1.flac")
    sink = open_atomic(target)
    # Three blocks of 16 MiB staged: invisible until the block list is committed.
    for _ in range(2 * _sinks.OBJECT_STORE_PART_SIZE // MiB + 1):
        sink.write(b"x" * MiB)
    assert azurite.names(container) == []

    # A server-side copy (adlfs's mv) may finish asynchronously on Azure: there must be none.
    with mock.patch.object(type(target.fs), "_cp_file", side_effect=AssertionError("copied")):
        sink.commit()

    assert azurite.names(container) == ["tts/1.flac"]
    assert azurite.read(container, "tts/1.flac") == b"x" * (2 * _sinks.OBJECT_STORE_PART_SIZE + MiB)
    assert existing_size(target) == 2 * _sinks.OBJECT_STORE_PART_SIZE + MiB


def test_an_aborted_upload_after_blocks_were_staged_commits_nothing(azurite, container):
    sink = open_atomic(abfs_path(container, "tts/2.flac"))
    sink.write(b"x" * (_sinks.OBJECT_STORE_PART_SIZE + MiB))  # one block staged
    assert azurite.uncommitted_blobs(container) == ["tts/2.flac"]  # the upload really began

    sink.abort()
    del sink
    gc.collect()  # fsspec's __del__ would commit a file that was merely left unclosed

    assert azurite.names(container) == []
    assert existing_size(abfs_path(container, "tts/2.flac")) is None


def test_an_older_blob_stays_readable_until_the_new_one_is_committed(azurite, container):
    target = abfs_path(container, "tts/3.flac")
    azurite.fs.pipe_file(target.path, b"old")
    sink = open_atomic(target)
    sink.write(b"y" * (_sinks.OBJECT_STORE_PART_SIZE + MiB))
    assert azurite.read(container, "tts/3.flac") == b"old"
    sink.abort()
    assert azurite.read(container, "tts/3.flac") == b"old"

    replacement = open_atomic(target)
    replacement.write(b"new")
    replacement.commit()
    assert azurite.read(container, "tts/3.flac") == b"new"
