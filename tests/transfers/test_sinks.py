"""Whole-or-nothing writers, on a local folder and on S3 (moto server, real S3 protocol);
the streaming S3 sink's failure paths also against a fake uploader."""

from __future__ import annotations

import hashlib
import sys
import time

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_camb.storage import sinks as _sinks
from airflow_provider_camb.storage.sinks import (
    S3Clients,
    S3StreamSink,
    S3UploadError,
    existing_size,
    open_atomic,
)
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
    monkeypatch.setattr(_sinks, "S3_PART_SIZE", 5 * MiB)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def uploaded_parts(moto_s3, bucket, key):
    [upload] = moto_s3.client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    parts = moto_s3.client.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
    return len(parts.get("Parts", []))


def test_plain_fsspec_with_block_commits_a_partial_object_on_error(moto_s3, bucket, small_parts):
    """Why the sinks exist: ``with fs.open(...)`` uploads whatever was written when it fails."""
    path = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/naive.flac")
    with pytest.raises(RuntimeError), path.fs.open(path.path, "wb", block_size=5 * MiB) as file:
        file.write(b"x" * 6 * MiB)
        raise RuntimeError("the download broke")
    assert moto_s3.keys(bucket) == ["naive.flac"]  # a truncated "file" at the final key


# -- the streaming boto3 sink (s3://, s3a://) ------------------------------------------------


def test_s3_goes_through_the_streaming_boto3_sink_with_one_client_per_connection(bucket):
    clients = S3Clients()
    first = open_atomic(ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/a.flac"), clients)
    second = open_atomic(ObjectStoragePath(f"s3a://{MOTO_CONN_ID}@{bucket}/b.flac"), clients)
    try:
        assert isinstance(first, S3StreamSink) and isinstance(second, S3StreamSink)
        assert list(clients._clients) == [MOTO_CONN_ID]
    finally:
        first.abort()
        second.abort()


def test_s3_without_the_amazon_hook_falls_back_to_s3fs(moto_s3, bucket, monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon.aws.hooks.s3", None)  # ImportError
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/1.flac")
    sink = open_atomic(target)
    assert isinstance(sink, _sinks._DiscardableSink)
    sink.write(b"x" * 1000)
    sink.commit()
    assert moto_s3.keys(bucket) == ["tts/1.flac"]


def test_s3_small_file_is_one_put_after_the_last_byte(moto_s3, bucket):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/1.flac")
    sink = open_atomic(target)
    sink.write(b"x" * 1000)
    sink.write(memoryview(b"y" * 1000))
    time.sleep(0.2)
    assert moto_s3.keys(bucket) == []  # below the multipart threshold nothing is sent yet
    sink.commit()
    assert moto_s3.keys(bucket) == ["tts/1.flac"]
    assert moto_s3.sha256(bucket, "tts/1.flac") == hashlib.sha256(b"x" * 1000 + b"y" * 1000).hexdigest()


def test_s3_small_file_is_never_put_on_failure(moto_s3, bucket):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/2.flac")
    sink = open_atomic(target)
    sink.write(b"x" * 1000)
    sink.abort()
    assert moto_s3.keys(bucket) == []
    assert moto_s3.pending_uploads(bucket) == []


def test_s3_commit_writes_the_whole_object_in_parts(moto_s3, bucket, small_parts):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/3.flac")
    sink = open_atomic(target)
    digest = hashlib.sha256()
    for i in range(23):
        chunk = bytes([i]) * MiB
        digest.update(chunk)
        sink.write(chunk)
    sink.commit()
    assert moto_s3.keys(bucket) == ["tts/3.flac"]
    assert moto_s3.pending_uploads(bucket) == []
    assert moto_s3.sha256(bucket, "tts/3.flac") == digest.hexdigest()
    assert existing_size(target) == 23 * MiB
    assert existing_size(ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/none.flac")) is None


def test_s3_abort_after_parts_were_uploaded_leaves_no_upload_and_no_key(moto_s3, bucket, small_parts):
    key = "tts/4.flac"
    sink = open_atomic(ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/{key}"))
    for _ in range(17):
        sink.write(b"z" * MiB)
    wait_for(lambda: moto_s3.pending_uploads(bucket) and uploaded_parts(moto_s3, bucket, key) >= 2)
    sink.abort()
    assert moto_s3.pending_uploads(bucket) == []
    assert moto_s3.keys(bucket) == []


class FakeClient:
    """Stands in for boto3: ``upload_fileobj`` runs ``behaviour(fileobj)``."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.raised: list[BaseException] = []

    def upload_fileobj(self, fileobj, bucket, key, Config=None):
        try:
            self.behaviour(fileobj)
        except BaseException as err:
            self.raised.append(err)
            raise


def test_an_uploader_that_dies_unblocks_a_writer_with_its_error():
    def fail_at_once(fileobj):
        raise ConnectionError("endpoint unreachable")

    sink = S3StreamSink(FakeClient(fail_at_once), "bucket", "tts/1.flac")
    started = time.monotonic()
    with pytest.raises(S3UploadError, match=r"upload to s3://bucket/tts/1.flac failed: ConnectionError"):
        # More chunks than the queue holds: without the liveness check this would block forever.
        for _ in range(_sinks.S3_QUEUE_CHUNKS * 4):
            sink.write(b"x" * 1024)
    assert time.monotonic() - started < 5
    sink.abort()  # still safe afterwards


def test_an_upload_error_after_the_last_byte_surfaces_in_commit():
    def read_all_then_fail(fileobj):
        while fileobj.read(MiB):
            pass
        raise OSError("CompleteMultipartUpload failed")

    sink = S3StreamSink(FakeClient(read_all_then_fail), "bucket", "tts/1.flac")
    sink.write(b"x" * 1000)
    with pytest.raises(S3UploadError, match="CompleteMultipartUpload failed"):
        sink.commit()


def test_abort_with_a_full_queue_returns_promptly_and_fails_the_upload():
    def slow_reader(fileobj):
        while fileobj.read(1024):
            time.sleep(0.05)

    client = FakeClient(slow_reader)
    sink = S3StreamSink(client, "bucket", "tts/1.flac")
    for _ in range(_sinks.S3_QUEUE_CHUNKS + 2):  # the queue is full now
        sink.write(b"x" * 1024)
    started = time.monotonic()
    sink.abort()
    assert time.monotonic() - started < 2
    assert [type(err).__name__ for err in client.raised] == ["_Abort"]  # s3transfer would abort


def test_reader_returns_exactly_what_was_asked_until_the_end():
    import queue
    import threading

    chunks: queue.Queue = queue.Queue()
    for item in (b"abc", b"defg", b"h", _sinks._EOF):
        chunks.put(item)
    reader = _sinks._QueueReader(chunks, threading.Event())
    assert reader.read(2) == b"ab"
    assert reader.read(4) == b"cdef"
    assert reader.read() == b"gh"
    assert reader.read(5) == b""


# -- the s3fs sink (fallback for S3, and GCS) ------------------------------------------------


def s3fs_sink(target):
    return _sinks._DiscardableSink(target.fs, target.path)


def test_s3fs_multipart_upload_is_aborted_on_failure(moto_s3, bucket, small_parts):
    target = ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/1.flac")
    sink = s3fs_sink(target)
    sink.write(b"x" * 6 * MiB)  # one 5 MiB part is uploaded now
    assert moto_s3.pending_uploads(bucket) == ["tts/1.flac"]
    assert moto_s3.keys(bucket) == []
    sink.abort()
    del sink  # fsspec's __del__ would commit a file that was merely left unclosed
    import gc

    gc.collect()
    assert moto_s3.keys(bucket) == []
    assert moto_s3.pending_uploads(bucket) == []


def test_s3fs_small_file_is_never_put_on_failure(moto_s3, bucket):
    sink = s3fs_sink(ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/2.flac"))
    sink.write(b"x" * 1000)
    sink.abort()
    assert moto_s3.keys(bucket) == []


def test_s3fs_commit_writes_the_whole_object(moto_s3, bucket, small_parts):
    sink = s3fs_sink(ObjectStoragePath(f"s3://{MOTO_CONN_ID}@{bucket}/tts/3.flac"))
    for _ in range(11):
        sink.write(b"y" * MiB)
    sink.commit()
    assert moto_s3.keys(bucket) == ["tts/3.flac"]
    assert moto_s3.pending_uploads(bucket) == []


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
