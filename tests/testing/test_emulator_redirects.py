"""Redirects to a foreign loopback host: where they point, and what a client that follows them leaks."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_camb.testing import CambEmulator, _foreign

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.testing.conftest import Api


def _host(netloc: str) -> str:
    return netloc.rsplit(":", 1)[0]


def test_the_foreign_host_is_another_loopback_host(camb_emulator: CambEmulator) -> None:
    camb_emulator.redirect_next()
    host = _host(camb_emulator.foreign_host)
    assert host != "127.0.0.1"
    assert host == "localhost" or host.startswith("127.")


def test_a_redirect_points_at_the_same_path_and_query_on_the_foreign_host(
    api: Api, camb_emulator: CambEmulator
) -> None:
    camb_emulator.redirect_next(1, "list_voices")
    response = api.get("/list-voices", params={"page": "2"}, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == f"http://{camb_emulator.foreign_host}/apis/list-voices?page=2"
    assert [e.status for e in camb_emulator.requests("list_voices")] == [302]
    assert camb_emulator.redirected_requests == []
    assert api.get("/list-voices", allow_redirects=False).status_code == 200


def test_a_client_that_follows_a_307_succeeds_and_the_foreign_journal_shows_the_leaked_key(
    api: Api, camb_emulator: CambEmulator
) -> None:
    run_ids = camb_emulator.add_tts_runs(2)
    camb_emulator.redirect_next(1, "tts_results", status=307)
    response = api.post("/tts-results", json={"run_ids": run_ids})  # requests follows by default
    assert response.status_code == 200
    assert set(response.json()) == {str(r) for r in run_ids}
    (leaked,) = camb_emulator.redirected_requests
    assert (leaked.method, leaked.path, leaked.endpoint, leaked.status) == (
        "POST",
        "/apis/tts-results",
        "tts_results",
        200,
    )
    assert leaked.json == {"run_ids": run_ids}
    assert leaked.api_key_sent is True
    assert camb_emulator.api_key not in repr(camb_emulator.redirected_requests)
    assert [e.status for e in camb_emulator.requests("tts_results")] == [307]


def test_a_client_that_drops_the_key_on_another_host_leaves_no_key_in_the_foreign_journal(
    api: Api, camb_emulator: CambEmulator
) -> None:
    camb_emulator.redirect_next(1, "source_languages", status=301)
    redirect = api.get("/source-languages", allow_redirects=False)
    followed = requests.get(redirect.headers["Location"], timeout=10)  # no x-api-key
    assert followed.status_code == 200  # the foreign host never asks for the key
    assert followed.json() == api.get("/source-languages").json()
    (entry,) = camb_emulator.redirected_requests
    assert entry.api_key_sent is False


def test_redirects_hit_count_requests_of_their_endpoint_only(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.redirect_next(2, "list_voices", status=308)
    assert api.get("/source-languages", allow_redirects=False).status_code == 200
    codes = [api.get("/list-voices", allow_redirects=False).status_code for _ in range(3)]
    assert codes == [308, 308, 200]


def test_a_wildcard_redirect_skips_downloads(api: Api, camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    camb_emulator.redirect_next()
    assert requests.get(camb_emulator.download_url(run_id), timeout=10, allow_redirects=False).ok
    assert api.get("/target-languages", allow_redirects=False).status_code == 302


def test_scheduled_failures_come_before_redirects(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.redirect_next(1, "list_voices")
    camb_emulator.fail_next("list_voices", status=503)
    codes = [api.get("/list-voices", allow_redirects=False).status_code for _ in range(3)]
    assert codes == [503, 302, 200]


def test_the_foreign_host_streams_tts_like_the_api(api: Api, camb_emulator: CambEmulator) -> None:
    body = {"text": "Followed me here.", "language": "en-us", "voice_id": 1}
    direct = api.post("/tts-stream", json=body).content
    camb_emulator.redirect_next(1, "tts_stream", status=307)
    followed = api.post("/tts-stream", json=body)
    assert followed.status_code == 200
    assert followed.content == direct
    assert followed.headers["Transfer-Encoding"] == "chunked"
    assert [e.endpoint for e in camb_emulator.redirected_requests] == ["tts_stream"]


def test_clear_faults_drops_pending_redirects(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.redirect_next(3)
    camb_emulator.clear_faults()
    assert api.get("/list-voices", allow_redirects=False).status_code == 200


def test_clear_journal_also_forgets_the_redirected_requests(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.redirect_next(1, "list_voices")
    api.get("/list-voices")
    assert camb_emulator.redirected_requests
    camb_emulator.clear_journal()
    assert camb_emulator.redirected_requests == []


def test_stop_stops_the_foreign_listener() -> None:
    emu = CambEmulator().start()
    emu.redirect_next()
    host, port = emu.foreign_host.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=5).close()
    emu.stop()
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()
    assert emu.foreign_host == f"{host}:{port}"  # still readable for assertions


def test_without_127_0_0_2_the_foreign_host_is_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    real_server: Callable[..., Any] = _foreign.Server

    def only_127_0_0_1(address: tuple[str, int], respond: Any) -> Any:
        if address[0] != "127.0.0.1":  # as on a system whose loopback has one address
            raise OSError(99, "Cannot assign requested address")
        return real_server(address, respond)

    monkeypatch.setattr(_foreign, "Server", only_127_0_0_1)
    with CambEmulator() as emu:
        emu.redirect_next(1, "list_voices")
        assert _host(emu.foreign_host) == "localhost"
        response = requests.get(emu.base_url + "/list-voices", headers={"x-api-key": emu.api_key}, timeout=10)
        assert response.status_code == 200
        assert [e.api_key_sent for e in emu.redirected_requests] == [True]


def test_an_emulator_on_127_0_0_2_redirects_elsewhere() -> None:
    try:
        emu = CambEmulator(host="127.0.0.2").start()
    except OSError:
        pytest.skip("127.0.0.2 cannot be bound here")
    try:
        emu.redirect_next()
        assert _host(emu.foreign_host) not in ("127.0.0.2", "")
    finally:
        emu.stop()


def test_foreign_host_before_any_redirect_is_an_error(camb_emulator: CambEmulator) -> None:
    with pytest.raises(RuntimeError, match="no redirect has been scheduled"):
        _ = camb_emulator.foreign_host


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"status": 200}, "status must be one of"),
        ({"status": 304}, "status must be one of"),
        ({"endpoint": "download"}, "API endpoints"),
        ({"endpoint": "tts-results"}, "unknown endpoint"),
        ({"count": 0}, "at least 1"),
    ],
)
def test_bad_redirect_arguments_are_refused(
    camb_emulator: CambEmulator, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        camb_emulator.redirect_next(**kwargs)
