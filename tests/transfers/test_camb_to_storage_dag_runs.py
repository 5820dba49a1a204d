"""CambTTSToStorageOperator in real DAG runs (``dag.test()``) against the emulator, to a local
folder and to S3 on a moto server: whole files, faults, idempotency, the key never leaking."""

from __future__ import annotations

import pytest

from airflow_provider_camb.utils.xcom_keys import FILE_SIZES, MISSING_RUN_IDS
from tests.transfers.conftest import Backend, transfer_dag, unique_dag_id

pytestmark = pytest.mark.usefixtures("airflow_db")


def run_transfer(dag_runner, request, backend: Backend, **kwargs):
    kwargs.setdefault("destination", backend.destination)
    kwargs.setdefault("destination_conn_id", backend.conn_id)
    dag = transfer_dag(unique_dag_id(request) + kwargs.pop("suffix", ""), **kwargs)
    return dag_runner.run(dag)


def assert_all_delivered(dag_runner, dag_run, emu, backend: Backend, run_ids, ext="flac"):
    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    names = {run_id: f"{run_id}.{ext}" for run_id in run_ids}
    assert dag_runner.xcom(dag_run, "transfer") == {
        str(run_id): backend.uri(name) for run_id, name in names.items()
    }
    assert dag_runner.xcom(dag_run, "transfer", FILE_SIZES) == {
        str(run_id): emu.audio_size(run_id) for run_id in run_ids
    }
    # Nothing else in the folder: no temp leftovers, no pending multipart upload.
    assert backend.listing() == sorted(names.values())
    for run_id, name in names.items():
        assert backend.digest(name) == emu.audio_sha256(run_id), name


def test_run_ids_are_streamed_byte_identical_to_both_backends(dag_runner, request, camb_emulator, backend):
    emu = camb_emulator
    # Small files, one part, and (on S3) a multipart upload of three 8 MiB parts.
    run_ids = (
        emu.add_tts_runs(3, size_bytes=300_000)
        + emu.add_tts_runs(1, size_bytes=6 * 2**20)
        + emu.add_tts_runs(1, size_bytes=17 * 2**20 + 5)
    )

    dag_run = run_transfer(dag_runner, request, backend, run_ids=run_ids, max_concurrency=3)

    assert_all_delivered(dag_runner, dag_run, emu, backend, run_ids)
    downloads = emu.requests("download")
    assert sorted(int(e.path.rsplit("/", 1)[1].split(".")[0]) for e in downloads) == sorted(run_ids)
    assert {e.method for e in downloads} == {"GET"}  # nothing existed: no HEAD needed
    # The key goes to the API only, never to the storage host.
    assert not any(e.api_key_sent for e in downloads)
    assert all(e.api_key_sent for e in emu.journal if e.endpoint != "download")


def test_bulk_url_map_lands_with_the_extension_of_each_file(dag_runner, request, camb_emulator, backend):
    emu = camb_emulator
    flac = emu.add_tts_runs(2)
    wav = emu.add_tts_runs(1, audio_format="wav")
    urls = {str(run_id): emu.download_url(run_id) for run_id in flac + wav}

    dag_run = run_transfer(dag_runner, request, backend, urls=urls)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert backend.listing() == sorted([f"{flac[0]}.flac", f"{flac[1]}.flac", f"{wav[0]}.wav"])
    assert backend.digest(f"{wav[0]}.wav") == emu.audio_sha256(wav[0])
    # The URLs were given: the API was never asked.
    assert [e.endpoint for e in emu.journal] == ["download"] * 3


def test_second_run_transfers_zero_bytes(dag_runner, request, camb_emulator, backend):
    emu = camb_emulator
    run_ids = emu.add_tts_runs(3, size_bytes=200_000)
    first = run_transfer(dag_runner, request, backend, run_ids=run_ids)
    assert first.state == "success"
    emu.clear_journal()

    second = run_transfer(dag_runner, request, backend, run_ids=run_ids, suffix="_again")

    assert_all_delivered(dag_runner, second, emu, backend, run_ids)
    downloads = emu.requests("download")
    # Sizes checked with a one-byte GET each (signed URLs are bound to GET): no body, no refresh.
    assert [(e.method, e.range, e.status) for e in downloads] == [("GET", "bytes=0-0", 206)] * 3
    assert emu.requests("tts_result") == []
    assert len(emu.requests("tts_results")) == 1  # the URLs themselves, as on the first run


def test_a_crashed_run_is_completed_by_copying_only_what_is_missing(
    dag_runner, request, camb_emulator, backend
):
    emu = camb_emulator
    run_ids = emu.add_tts_runs(3, size_bytes=100_000)
    first = run_transfer(dag_runner, request, backend, run_ids=run_ids[:2])
    assert first.state == "success"
    emu.clear_journal()

    second = run_transfer(dag_runner, request, backend, run_ids=run_ids, suffix="_again")

    assert_all_delivered(dag_runner, second, emu, backend, run_ids)
    whole_gets = [e.path for e in emu.requests("download") if e.method == "GET" and e.range is None]
    assert whole_gets == [f"/files/tts/{run_ids[2]}.flac"]


FAULTS = {
    "reset_mid_file": lambda emu: emu.reset_downloads_after(100_000, count=2),
    "short_body": lambda emu: emu.short_downloads(missing_bytes=10, count=2),
    "rate_limited": lambda emu: emu.fail_next("download", 3, status=429, retry_after=1),
    "server_errors": lambda emu: emu.fail_next("download", 3, status=503),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_transient_faults_end_in_whole_files(
    dag_runner, request, camb_emulator, backend, fault, download_sleeps
):
    emu = camb_emulator
    run_ids = emu.add_tts_runs(2, size_bytes=400_000)
    FAULTS[fault](emu)

    dag_run = run_transfer(dag_runner, request, backend, run_ids=run_ids, overwrite=True)

    assert_all_delivered(dag_runner, dag_run, emu, backend, run_ids)
    assert len(emu.requests("download")) > len(run_ids)  # the faults really happened
    assert download_sleeps  # and were waited out
    if fault == "rate_limited":
        assert 1.0 in download_sleeps  # Retry-After honoured


@pytest.mark.parametrize(
    ("size_mib", "cut_mib"),
    [
        # Below S3's 8 MiB multipart threshold: the single PUT must never be sent.
        (7, 6),
        # Two 8 MiB parts are uploaded before the cut: the multipart upload must be aborted.
        (20, 18),
    ],
    ids=["one_put", "multipart"],
)
def test_faults_beyond_the_retry_budget_leave_nothing_at_the_final_path(
    dag_runner, request, camb_emulator, backend, size_mib, cut_mib
):
    emu = camb_emulator
    (run_id,) = emu.add_tts_runs(1, size_bytes=size_mib * 2**20)
    # More cuts than attempts.
    emu.reset_downloads_after(cut_mib * 2**20, count=10)

    dag_run = run_transfer(dag_runner, request, backend, run_ids=[run_id])

    assert dag_run.state == "failed"
    assert backend.listing() == []  # no partial object, no temp file, no pending upload
    missing = dag_runner.xcom(dag_run, "transfer", MISSING_RUN_IDS)
    assert list(missing) == [str(run_id)]
    assert "gave up after 5 attempts" in missing[str(run_id)]
    assert "signature" not in missing[str(run_id)]  # the signed query is never repeated


def test_expired_urls_are_refreshed_through_the_api(dag_runner, request, camb_emulator, backend):
    emu = camb_emulator
    run_ids = emu.add_tts_runs(2, size_bytes=50_000)
    # One URL says it has expired (refreshed before any download); one has a bad signature
    # (the storage host answers 403, then it is refreshed).
    expired = emu.download_url(run_ids[0], ttl=-60)
    tampered = emu.download_url(run_ids[1]).replace("signature=", "signature=0")
    urls = {str(run_ids[0]): expired, str(run_ids[1]): tampered}

    dag_run = run_transfer(dag_runner, request, backend, urls=urls)

    assert_all_delivered(dag_runner, dag_run, emu, backend, run_ids)
    refreshed = sorted(int(e.path.rsplit("/", 1)[1]) for e in emu.requests("tts_result"))
    assert refreshed == sorted(run_ids)
    # The expired URL was never used; the tampered one was refused once.
    assert sorted(e.status for e in emu.requests("download")) == [200, 200, 403]
    assert not any(e.api_key_sent for e in emu.requests("download"))


def test_a_url_that_keeps_expiring_fails_with_a_clear_reason(dag_runner, request, camb_emulator, tmp_path):
    emu = camb_emulator
    (run_id,) = emu.add_tts_runs(1)
    emu.url_ttl = -60  # every URL the API hands out is already expired
    dag_run = dag_runner.run(
        transfer_dag(
            unique_dag_id(request), urls={str(run_id): emu.download_url(run_id)}, destination=str(tmp_path)
        )
    )
    assert dag_run.state == "failed"
    reason = dag_runner.xcom(dag_run, "transfer", MISSING_RUN_IDS)[str(run_id)]
    assert "HTTP 403" in reason and "expired" in reason
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fail_on_missing", [True, False])
def test_runs_the_api_cannot_serve_are_named(dag_runner, request, camb_emulator, tmp_path, fail_on_missing):
    emu = camb_emulator
    ready = emu.add_tts_runs(2)
    (unfinished,) = emu.add_tts_runs(1, finished=False)

    dag_run = dag_runner.run(
        transfer_dag(
            unique_dag_id(request),
            run_ids=[*ready, unfinished],
            destination=str(tmp_path),
            fail_on_missing=fail_on_missing,
        )
    )

    assert dag_run.state == ("failed" if fail_on_missing else "success")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{run_id}.flac" for run_id in ready]
    assert dag_runner.xcom(dag_run, "transfer", FILE_SIZES) == {str(r): emu.audio_size(r) for r in ready}
    missing = dag_runner.xcom(dag_run, "transfer", MISSING_RUN_IDS)
    assert list(missing) == [str(unfinished)]
    if not fail_on_missing:
        assert set(dag_runner.xcom(dag_run, "transfer")) == {str(r) for r in ready}


def test_invalid_run_ids_fail_before_any_request(dag_runner, request, camb_emulator, tmp_path):
    dag_run = dag_runner.run(
        transfer_dag(unique_dag_id(request), run_ids=[1001, "abc", -3], destination=str(tmp_path))
    )
    assert dag_run.state == "failed"
    assert camb_emulator.journal == []


def test_a_non_http_url_fails_before_any_request(dag_runner, request, camb_emulator, tmp_path):
    (run_id,) = camb_emulator.add_tts_runs(1)
    urls = {str(run_id): camb_emulator.download_url(run_id), "1002": "file:///etc/passwd"}
    dag_run = dag_runner.run(transfer_dag(unique_dag_id(request), urls=urls, destination=str(tmp_path)))
    assert dag_run.state == "failed"
    assert camb_emulator.journal == []
    assert list(tmp_path.iterdir()) == []
