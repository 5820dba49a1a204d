"""Signed audio URLs: no key needed, Range/206, bound to their HTTP method, expiry and tampering."""

from __future__ import annotations

import hashlib
import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator


def test_a_signed_url_downloads_the_whole_file_without_an_api_key(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=300_001)
    response = requests.get(camb_emulator.download_url(run_id), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/flac"
    assert response.headers["Content-Length"] == "300001"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert hashlib.sha256(response.content).hexdigest() == camb_emulator.audio_sha256(run_id)
    (entry,) = camb_emulator.requests("download")
    assert entry.path == f"/files/tts/{run_id}.flac"
    assert entry.api_key_sent is False
    assert entry.status == 200


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=50-10**9", 50, 99_999),
    ],
)
def test_a_range_request_answers_206_with_the_matching_slice(
    camb_emulator: CambEmulator, header: str, first: int, last: int
) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=100_000)
    header = header.replace("10**9", str(10**9))
    response = requests.get(camb_emulator.download_url(run_id), headers={"Range": header}, timeout=10)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/100000"
    assert response.content == b"".join(camb_emulator.iter_audio(run_id, first, last + 1))
    assert camb_emulator.requests("download")[0].range == header


def test_a_range_past_the_end_is_416(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=1000)
    response = requests.get(camb_emulator.download_url(run_id), headers={"Range": "bytes=1000-"}, timeout=10)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */1000"


def _raw_exchange(url: str, method: str) -> bytes:
    # Everything the server writes for one request, read until it closes the connection.
    parts = urlsplit(url)
    request = (
        f"{method} {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_head_of_a_url_signed_for_get_is_403_without_a_body(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, audio_format="wav", size_bytes=5_000_000)
    url = camb_emulator.download_url(run_id)
    response = requests.head(url, timeout=10)
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/xml"
    raw = _raw_exchange(url, "HEAD")
    assert raw.startswith(b"HTTP/1.1 403 ")
    assert raw.endswith(b"\r\n\r\n")  # the headers and nothing after them
    (entry, _) = camb_emulator.requests("download")
    assert (entry.method, entry.status) == ("HEAD", 403)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_another_method_on_a_url_signed_for_get_is_403_signature_does_not_match(
    camb_emulator: CambEmulator, method: str
) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    response = requests.request(method, camb_emulator.download_url(run_id), data=b"x", timeout=10)
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/xml"
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.content


def test_a_url_signed_for_head_serves_head_but_not_get(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, audio_format="wav", size_bytes=5_000_000)
    url = camb_emulator.download_url(run_id, method="HEAD")
    response = requests.head(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "5000000"
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.content == b""
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in refused.content


def test_a_put_with_a_url_signed_for_put_is_405_as_the_store_is_read_only(
    camb_emulator: CambEmulator,
) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    response = requests.put(camb_emulator.download_url(run_id, method="PUT"), data=b"x", timeout=10)
    assert response.status_code == 405
    assert b"<Code>MethodNotAllowed</Code>" in response.content


def test_a_one_byte_ranged_get_answers_the_size_instead_of_a_head(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=123_457)
    response = requests.get(camb_emulator.download_url(run_id), headers={"Range": "bytes=0-0"}, timeout=10)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == "bytes 0-0/123457"
    assert response.headers["Content-Type"] == "audio/flac"
    assert response.content == b"f"  # the first byte of "fLaC"


def test_with_method_bound_urls_off_a_get_url_serves_head(camb_emulator: CambEmulator) -> None:
    camb_emulator.method_bound_urls = False
    (run_id,) = camb_emulator.add_tts_runs(1, audio_format="wav", size_bytes=5_000_000)
    response = requests.head(camb_emulator.download_url(run_id), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "5000000"
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.content == b""
    # Other methods are still not served: the file host only reads.
    put = requests.put(camb_emulator.download_url(run_id), data=b"x", timeout=10)
    assert put.status_code == 405


def test_an_expired_url_is_403(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    camb_emulator.url_ttl = 0.2
    url = camb_emulator.download_url(run_id)
    assert requests.get(url, timeout=10).status_code == 200
    time.sleep(0.25)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert b"expired" in response.content


def test_a_zero_ttl_url_is_expired_at_once(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    assert requests.get(camb_emulator.download_url(run_id, ttl=0), timeout=10).status_code == 403


@pytest.mark.parametrize("tamper", ["signature", "expires", "run_id", "drop_signature"])
def test_a_tampered_url_is_403(camb_emulator: CambEmulator, tamper: str) -> None:
    first, second = camb_emulator.add_tts_runs(2)
    url = camb_emulator.download_url(first)
    base, query = url.split("?")
    params = dict(pair.split("=") for pair in query.split("&"))
    if tamper == "signature":
        params["signature"] = ("0" if params["signature"][0] != "0" else "1") + params["signature"][1:]
    elif tamper == "expires":
        params["expires"] = str(float(params["expires"]) + 10_000)
    elif tamper == "run_id":
        base = base.replace(f"/{first}.flac", f"/{second}.flac")
    else:
        del params["signature"]
    forged = base + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    response = requests.get(forged, timeout=10)
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/xml"


def test_the_api_key_is_not_needed_but_tolerated_on_downloads(camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    response = requests.get(camb_emulator.download_url(run_id), headers={"x-api-key": "whatever"}, timeout=10)
    assert response.status_code == 200
    assert camb_emulator.requests("download")[0].api_key_sent is True
