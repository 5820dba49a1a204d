"""Fault injection: status codes with Retry-After, latency, reset and short downloads."""

from __future__ import annotations

import http.client
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.testing.conftest import Api


def _raw_get(url: str) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    conn.request("GET", f"{parts.path}?{parts.query}")
    return conn.getresponse(), conn


def test_fail_next_answers_429_with_retry_after_then_recovers(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.fail_next("tts_results", count=2, status=429, retry_after=3)
    run_ids = camb_emulator.add_tts_runs(2)
    first = api.post("/tts-results", json={"run_ids": run_ids})
    second = api.post("/tts-results", json={"run_ids": run_ids})
    third = api.post("/tts-results", json={"run_ids": run_ids})
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert first.json() == {"detail": "Rate limit exceeded"}
    assert [e.status for e in camb_emulator.requests("tts_results")] == [429, 429, 200]


def test_a_failure_only_hits_its_own_endpoint(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.fail_next("list_voices", status=503)
    assert api.get("/source-languages").status_code == 200
    response = api.get("/list-voices")
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert api.get("/list-voices").status_code == 200


def test_a_wildcard_failure_hits_any_endpoint_with_a_custom_body(
    api: Api, camb_emulator: CambEmulator
) -> None:
    camb_emulator.fail_next("*", count=2, status=500, body={"error": "boom"})
    assert api.get("/source-languages").json() == {"error": "boom"}
    assert api.post("/tts", json={}).status_code == 500
    assert api.post("/tts", json={}).status_code == 422


def test_queued_failures_are_served_in_order(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.fail_next("source_languages", status=429, retry_after=1)
    camb_emulator.fail_next("source_languages", status=502, body="bad gateway")
    codes = [api.get("/source-languages").status_code for _ in range(3)]
    assert codes == [429, 502, 200]


def test_downloads_can_fail_like_a_throttled_store(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    camb_emulator.fail_next("download", status=503, retry_after=2)
    response = requests.get(camb_emulator.download_url(run_id), timeout=10)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"


def test_latency_delays_the_next_requests_then_stops(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.add_latency("source_languages", 0.3, count=1)
    started = time.perf_counter()
    assert api.get("/source-languages").status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    api.get("/source-languages")
    assert time.perf_counter() - started < 0.25


def test_download_latency_comes_before_the_first_byte(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    camb_emulator.add_latency("download", 0.2)
    for _ in range(2):
        started = time.perf_counter()
        response = requests.get(camb_emulator.download_url(run_id), stream=True, timeout=10)
        assert time.perf_counter() - started >= 0.2  # the headers (first bytes) were held back
        response.close()


def test_a_reset_download_breaks_after_the_given_bytes(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=2_000_000)
    camb_emulator.reset_downloads_after(100_000)
    response, conn = _raw_get(camb_emulator.download_url(run_id))
    assert response.status == 200
    assert response.getheader("Content-Length") == "2000000"
    received = b""
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        while chunk := response.read1(65536):
            received += chunk
        raise http.client.IncompleteRead(received)  # EOF before Content-Length bytes
    assert len(received) <= 100_000
    conn.close()
    assert requests.get(camb_emulator.download_url(run_id), timeout=10).content == b"".join(
        camb_emulator.iter_audio(run_id)
    )


def test_a_reset_download_is_an_error_for_requests(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=1_000_000)
    camb_emulator.reset_downloads_after(10, count=2)
    for _ in range(2):
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(camb_emulator.download_url(run_id), timeout=10).raise_for_status()
    assert requests.get(camb_emulator.download_url(run_id), timeout=10).status_code == 200


def test_a_short_download_sends_fewer_bytes_than_its_content_length(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=50_000)
    camb_emulator.short_downloads(missing_bytes=7)
    response, conn = _raw_get(camb_emulator.download_url(run_id))
    assert response.getheader("Content-Length") == "50000"
    with pytest.raises(http.client.IncompleteRead) as err:
        response.read()
    assert len(err.value.partial) == 50_000 - 7
    conn.close()


def test_clear_faults_drops_everything_pending(api: Api, camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    camb_emulator.fail_next("*", count=5)
    camb_emulator.add_latency("*", 5)
    camb_emulator.short_downloads(count=5)
    camb_emulator.clear_faults()
    assert api.get("/list-voices").status_code == 200
    response = requests.get(camb_emulator.download_url(run_id), timeout=10)
    assert len(response.content) == camb_emulator.audio_size(run_id)


def test_unknown_endpoint_names_are_refused(camb_emulator: CambEmulator) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        camb_emulator.fail_next("tts-results")


def test_a_status_http_has_no_name_for_is_still_answered(camb_emulator: CambEmulator) -> None:
    camb_emulator.fail_next("source_languages", status=599)
    response = requests.get(
        f"{camb_emulator.base_url}/source-languages", headers={"x-api-key": camb_emulator.api_key}, timeout=10
    )
    assert response.status_code == 599
