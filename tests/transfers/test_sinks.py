"""Whole-or-nothing writers, on a local folder and on S3 (moto server, real S3 protocol)."""

from __future__ import annotations

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_camb.transfers import _sinks
from airflow_provider_camb.transfers._sinks import existing_size, open_atomic
from tests.transfers.conftest import MOTO_CONN_ID

MiB = 2**20


def test_local_file_appears_only_on_commit(tmp_path):
    target = ObjectStoragePath(f"file://{tmp_path}/sub/1.flac")
    sink = open_atomic(target)
    sink.write(b"x" * 1000)
    assert not (tmp_path / "sub" / "1.flac").exists()
    [temp] = list((tmp_path / "sub").iterdir())
    assert temp.name.startswith(".1.flac.") and temp.name.endswith(".part")
    sink.commit()
    assert (tmp_path / "sub" / "1.flac").read_bytes() == b"x" * 1000
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["1.flac"]
    assert existing_size(target) == 1000


def test_local_abort_leaves_nothing_and_keeps_an_older_file(tmp_path):
    (tmp_path / "1.flac").write_bytes(b"old")
    target = ObjectStoragePath(f"file://{tmp_path}/1.flac")
    sink = open_atomic(target)
    sink.write(b"new, but only half")
    sink.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["1.flac"]
    assert (tmp_path / "1.flac").read_bytes() == b"old"


@pytest.fixture
def bucket(moto_s3):
    return moto_s3.new_bucket()


@pytest.fixture
def small_parts(monkeypatch):
    # 5 MiB is S3's smallest part: a 6 MiB write really starts a multipart upload.
    monkeypatch.setattr(_sinks, "OBJECT_STORE_PART_SIZE", 5 * MiB)


def test_plain_fsspec_with_block_commits_a_partial_object_on_error(moto_s3, bucket, small_parts):
    """Why the sinks exist: ``with fs.open(...)`` uploads whatever was written when it fails."""
    path = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/naive.flac")
    with pytest.raises(RuntimeError), path.fs.open(path.path, "wb", block_size=5 * MiB) as file:
        file.write(b"x" * 6 * MiB)
        raise RuntimeError("the download broke")
    assert moto_s3.keys(bucket) == ["naive.flac"]  # a truncated "file" at the final key


def test_s3_multipart_upload_is_aborted_on_failure(moto_s3, bucket, small_parts):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/1.flac")
    sink = open_atomic(target)
    sink.write(b"x" * 6 * MiB)  # one 5 MiB part is uploaded now
    assert moto_s3.pending_uploads(bucket) == ["tts/1.flac"]
    assert moto_s3.keys(bucket) == []
    sink.abort()
    del sink  # fsspec's __del__ would commit a file that was merely left unclosed
    import gc

    gc.collect()
    assert moto_s3.keys(bucket) == []
    assert moto_s3.pending_uploads(bucket) == []


def test_s3_small_file_is_never_put_on_failure(moto_s3, bucket):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/2.flac")
    sink = open_atomic(target)
    sink.write(b"x" * 1000)
    sink.abort()
    assert moto_s3.keys(bucket) == []


def test_s3_commit_writes_the_whole_object(moto_s3, bucket, small_parts):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/3.flac")
    sink = open_atomic(target)
    for _ in range(11):
        sink.write(b"y" * MiB)
    sink.commit()
    assert moto_s3.keys(bucket) == ["tts/3.flac"]
    assert moto_s3.pending_uploads(bucket) == []
    assert existing_size(target) == 11 * MiB
    assert existing_size(ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/none.flac")) is None


def test_other_backends_write_a_temp_key_then_move_it(tmp_path):
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    target = ObjectStoragePath("memory://camb-test/out/1.flac")
    fs = target.fs
    sink = open_atomic(target)
    sink.write(b"z" * 100)
    assert not fs.exists("/camb-test/out/1.flac")
    sink.commit()
    assert fs.cat("/camb-test/out/1.flac") == b"z" * 100
    assert [p.rsplit("/", 1)[1] for p in fs.find("/camb-test/out")] == ["1.flac"]
    failed = open_atomic(ObjectStoragePath("memory://camb-test/out/2.flac"))
    failed.write(b"partial")
    failed.abort()
    assert [p.rsplit("/", 1)[1] for p in fs.find("/camb-test/out")] == ["1.flac"]
