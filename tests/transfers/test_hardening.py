"""What real networks and real storage do that a plain emulator run hides: proxies, ~/.netrc,
method-bound signed URLs, URLs expiring by the thousand, and a task being stopped mid-backoff."""

from __future__ import annotations

import math
import threading
import time
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_camb.transfers._download import Downloader, Recovery
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator
from tests.forwarding_proxy import forwarding_proxy


def execute(operator: CambTTSToStorageOperator) -> Any:
    return operator.execute({"ti": mock.MagicMock()})  # type: ignore[arg-type]


def files_in(folder: Any) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- proxies, CA bundles and ~/.netrc come from the environment as for any requests client -------


def test_downloads_go_through_the_proxy_the_environment_names(camb_emulator, tmp_path, monkeypatch):
    run_ids = camb_emulator.add_tts_runs(3)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with forwarding_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        execute(CambTTSToStorageOperator(task_id="t", destination=str(tmp_path / "out"), run_ids=run_ids))

    downloads = [seen for seen in proxy.seen if "/files/tts/" in seen.url]
    api_calls = [seen for seen in proxy.seen if "/apis/" in seen.url]
    assert len(downloads) == 3  # every download passed through the proxy
    assert not any(seen.had_authorization for seen in downloads)  # no ~/.netrc credentials
    assert not any(seen.had_api_key for seen in downloads)  # and never the Camb.ai key
    assert api_calls and all(seen.had_api_key for seen in api_calls)  # the API calls too...
    assert not any(seen.had_authorization for seen in api_calls)  # ...with the key alone
    assert files_in(tmp_path / "out") == [f"{run_id}.flac" for run_id in run_ids]


def test_no_proxy_is_honoured_too(camb_emulator, tmp_path, monkeypatch):
    run_ids = camb_emulator.add_tts_runs(2)
    with forwarding_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")

        execute(CambTTSToStorageOperator(task_id="t", destination=str(tmp_path / "out"), run_ids=run_ids))

    assert proxy.seen == []
    assert len(files_in(tmp_path / "out")) == 2


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_comes_from_the_environment(monkeypatch, tmp_path, variable):
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(bundle))

    session = Downloader(pool_size=1).session
    settings = session.merge_environment_settings("https://storage.example/a.flac", {}, None, None, None)

    assert settings["verify"] == str(bundle)


# -- signed URLs are bound to GET ----------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_first_runs_and_re_runs_use_only_get_on_signed_urls(camb_emulator, tmp_path, overwrite):
    run_ids = camb_emulator.add_tts_runs(2, audio_format="wav")
    out = tmp_path / "out"
    for _ in range(2):
        execute(
            CambTTSToStorageOperator(task_id="t", destination=str(out), run_ids=run_ids, overwrite=overwrite)
        )

    downloads = camb_emulator.requests("download")
    assert {entry.method for entry in downloads} == {"GET"}
    assert all(entry.status in (200, 206) for entry in downloads)  # never a 403 for a wrong method
    assert camb_emulator.requests("tts_result") == []  # so no URL refresh either
    assert files_in(out) == [f"{run_id}.wav" for run_id in run_ids]


# -- expired URLs at scale -----------------------------------------------------------------------


def test_urls_that_expired_before_the_start_are_refreshed_in_bulk_calls(camb_emulator, tmp_path):
    run_ids = camb_emulator.add_tts_runs(12)
    expired = {str(run_id): camb_emulator.download_url(run_id, ttl=-60) for run_id in run_ids}

    execute(CambTTSToStorageOperator(task_id="t", destination=str(tmp_path / "out"), urls=expired))

    bulk = camb_emulator.requests("tts_results")
    assert [len(call.json["run_ids"]) for call in bulk] == [4, 4, 4]
    assert len(bulk) == math.ceil(12 / 5)
    assert camb_emulator.requests("tts_result") == []  # never one at a time
    assert len(files_in(tmp_path / "out")) == 12


def test_urls_refused_at_the_same_moment_share_bulk_refreshes(camb_emulator, tmp_path):
    run_ids = camb_emulator.add_tts_runs(8)
    # Valid expiry, broken signature: only the storage host's 403 tells, to all eight at once.
    refused = {
        str(run_id): camb_emulator.download_url(run_id).replace("signature=", "signature=0")
        for run_id in run_ids
    }

    execute(
        CambTTSToStorageOperator(
            task_id="t", destination=str(tmp_path / "out"), urls=refused, max_concurrency=8
        )
    )

    bulk_sizes = [len(call.json["run_ids"]) for call in camb_emulator.requests("tts_results")]
    assert sum(bulk_sizes) == 8
    assert len(bulk_sizes) < 8  # batched, not one call per file (2 when all arrive together)
    assert camb_emulator.requests("tts_result") == []
    assert len(files_in(tmp_path / "out")) == 8


# -- stopping ------------------------------------------------------------------------------------


def test_on_kill_during_a_backoff_wait_stops_the_task_within_a_second(camb_emulator, tmp_path, monkeypatch):
    # Real waits here: the point is that a long one is cut short.
    monkeypatch.setattr(Recovery, "wait", threading.Event.wait)
    (run_id,) = camb_emulator.add_tts_runs(1)
    camb_emulator.fail_next("download", count=5, status=503, retry_after=30)
    operator = CambTTSToStorageOperator(task_id="t", destination=str(tmp_path / "out"), run_ids=[run_id])
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            execute(operator)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while not camb_emulator.requests("download") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # now inside the 30 s backoff
    killed = time.monotonic()
    operator.on_kill()
    worker.join(timeout=5)

    assert not worker.is_alive()
    assert time.monotonic() - killed < 1.0
    assert isinstance(outcome[0], AirflowException)
    assert "cancelled" in str(outcome[0])
    assert len(camb_emulator.requests("download")) == 1
    assert files_in(tmp_path / "out") == []
