"""Whole-or-nothing writes to ``gs://`` with the real gcsfs, against gcp-storage-emulator.

The operators' runs on ``gs://`` are in the shared backend tests (the ``backend`` fixture) and in
``test_text_to_speech_object_stores.py``; here, the writer itself, part by part.
"""

from __future__ import annotations

import gc

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_camb.storage import sinks as _sinks
from airflow_provider_camb.storage.sinks import existing_size, open_atomic
from airflow_provider_camb.utils.xcom_keys import MISSING_RUN_IDS
from tests.transfers.conftest import transfer_dag, unique_dag_id
from tests.transfers.storage_emulators import GCS_CONN_ID

MiB = 2**20


@pytest.fixture
def bucket(gcs_emulator):
    return gcs_emulator.new_bucket()


def gs_path(bucket: str, name: str) -> ObjectStoragePath:
    return ObjectStoragePath(f"gs://{bucket}/{name}", conn_id=GCS_CONN_ID)


def test_gs_paths_reach_the_emulator_through_the_attached_gcsfs(gcs_emulator, bucket):
    target = gs_path(bucket, "tts/1.flac")
    assert target.fs is gcs_emulator.fs  # not a default gcsfs that would look for Google
    sink = open_atomic(target)
    sink.write(b"x" * 1000)
    sink.commit()
    assert gcs_emulator.names(bucket) == ["tts/1.flac"]
    assert existing_size(target) == 1000


def test_an_aborted_upload_after_a_part_was_sent_leaves_no_object_and_no_open_upload(gcs_emulator, bucket):
    sink = open_atomic(gs_path(bucket, "tts/1.flac"))
    # More than one part (16 MiB): gcsfs has begun a resumable upload and sent the first part.
    sink.write(b"x" * (_sinks.OBJECT_STORE_PART_SIZE + MiB))
    assert gcs_emulator.open_uploads(bucket) == ["tts/1.flac"]
    assert gcs_emulator.names(bucket) == []

    sink.abort()
    del sink
    gc.collect()  # fsspec's __del__ would commit a file that was merely left unclosed

    assert gcs_emulator.names(bucket) == []
    assert gcs_emulator.open_uploads(bucket) == []  # cancelled, not left to expire


def test_an_aborted_small_file_is_never_sent(gcs_emulator, bucket):
    sink = open_atomic(gs_path(bucket, "tts/2.flac"))
    sink.write(b"x" * 1000)
    sink.abort()
    assert gcs_emulator.names(bucket) == []
    assert gcs_emulator.open_uploads(bucket) == []


def test_an_older_object_stays_readable_until_the_new_one_is_committed(gcs_emulator, bucket):
    target = gs_path(bucket, "tts/3.flac")
    gcs_emulator.fs.pipe_file(target.path, b"old")
    sink = open_atomic(target)
    sink.write(b"y" * (_sinks.OBJECT_STORE_PART_SIZE + MiB))
    assert gcs_emulator.read(bucket, "tts/3.flac") == b"old"
    sink.abort()
    assert gcs_emulator.read(bucket, "tts/3.flac") == b"old"

    replacement = open_atomic(target)
    replacement.write(b"new")
    replacement.commit()
    assert gcs_emulator.read(bucket, "tts/3.flac") == b"new"


@pytest.mark.usefixtures("airflow_db")
def test_a_failed_cancel_does_not_hide_why_the_download_failed(
    dag_runner, request, camb_emulator, gcs_emulator, bucket, monkeypatch
):
    from gcsfs.core import GCSFile

    def cancel_fails(self: GCSFile) -> None:
        raise OSError("connection reset while cancelling the upload")

    monkeypatch.setattr(GCSFile, "discard", cancel_fails)
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=20 * MiB)
    camb_emulator.reset_downloads_after(18 * MiB, count=10)  # a part is sent before each cut

    dag = transfer_dag(
        unique_dag_id(request),
        run_ids=[run_id],
        destination=f"gs://{bucket}/tts/",
        destination_conn_id=GCS_CONN_ID,
    )
    dag_run = dag_runner.run(dag)

    assert dag_run.state == "failed"
    reason = dag_runner.xcom(dag_run, "transfer", MISSING_RUN_IDS)[str(run_id)]
    assert "gave up after 5 attempts" in reason
    assert "broke off" in reason
    assert "cancelling" not in reason
    assert len(camb_emulator.requests("download")) == 5  # each attempt was retried as a cut
    # Never finished, so never an object, although the uploads could not be cancelled.
    assert gcs_emulator.names(bucket) == []
