"""The control API under ``/_emulator/``, driven over HTTP against a real ``camb-emulator`` process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.testing.conftest import start_cli

if TYPE_CHECKING:
    from collections.abc import Iterator


class Running:
    """A ``camb-emulator`` subprocess and what it printed on start."""

    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines
        self.base_url = lines[0].rsplit(" ", 1)[-1]
        self.root = self.base_url.removesuffix("/apis")
        self.key = {"x-api-key": "test-api-key"}

    def control(self, method: str, name: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.root}/_emulator/{name}", json=body, timeout=10, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base_url + path, headers=self.key, timeout=10, **kwargs)


def _start(*args: str) -> Running:
    return Running(*start_cli(*args))


def _stop(running: Running) -> None:
    running.proc.send_signal(signal.SIGTERM)
    running.proc.communicate(timeout=15)
    assert running.proc.returncode == 0


@pytest.fixture(scope="module")
def emu() -> Iterator[Running]:
    running = _start("--control", "--seed", "tts:3", "--seed", "dubbing:2", "--pending-polls", "1")
    yield running
    _stop(running)


@pytest.fixture(autouse=True)
def _fresh(emu: Running) -> Iterator[None]:
    yield
    emu.control("DELETE", "faults")
    emu.control("DELETE", "journal")


def test_the_cli_prints_the_seeded_ids_as_one_json_line(emu: Running) -> None:
    seeded = json.loads(next(line for line in emu.lines if line.startswith("{")))["seeded"]
    assert [len(seeded["tts"]["task_ids"]), len(seeded["dubbing"]["task_ids"])] == [3, 2]
    task_id, run_id = seeded["dubbing"]["task_ids"][0], seeded["dubbing"]["run_ids"][0]
    assert emu.api("GET", f"/dub/{task_id}").json()["status"] == "PENDING"
    assert emu.api("GET", f"/dub/{task_id}").json() == {
        "status": "SUCCESS",
        "run_id": run_id,
        "exception_reason": None,
        "message": None,
    }
    assert any(line == f"Control API: {emu.root}/_emulator/" for line in emu.lines)


def test_seed_tasks_and_runs_answer_their_ids(emu: Running) -> None:
    tasks = emu.control("POST", "seed", {"kind": "tts", "tasks": 2, "pending_polls": 1, "outcome": "SUCCESS"})
    assert tasks.status_code == 200
    body = tasks.json()
    assert len(body["task_ids"]) == len(body["run_ids"]) == 2
    runs = emu.control("POST", "seed", {"kind": "text-to-sound", "runs": 2}).json()
    assert (runs["kind"], runs["task_ids"], len(runs["run_ids"])) == ("text_to_sound", [], 2)
    bulk = emu.api("POST", "/text-to-sound-results", json={"run_ids": runs["run_ids"]})
    assert set(bulk.json()) == {str(rid) for rid in runs["run_ids"]}


@pytest.mark.parametrize(
    "body",
    [{"kind": "karaoke", "tasks": 1}, {"kind": "tts"}, {"kind": "tts", "tasks": 1, "runs": 1}, {"tasks": 1}],
)
def test_a_bad_seed_is_400_with_a_detail(emu: Running, body: dict[str, Any]) -> None:
    response = emu.control("POST", "seed", body)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_faults_latency_and_clearing(emu: Running) -> None:
    assert emu.control(
        "POST", "faults", {"endpoint": "list_voices", "count": 2, "status": 503, "retry_after": 1}
    ).ok
    first = emu.api("GET", "/list-voices")
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
    # Control requests are not subject to faults, even "*" ones.
    emu.control("POST", "faults", {"endpoint": "*", "count": 5, "status": 500})
    assert emu.control("GET", "settings").status_code == 200
    assert emu.control("DELETE", "faults").json() == {"ok": True}
    assert emu.api("GET", "/list-voices").status_code == 200
    assert emu.control("POST", "latency", {"endpoint": "source_languages", "seconds": 0.4, "count": 1}).ok
    started = time.monotonic()
    emu.api("GET", "/source-languages")
    assert time.monotonic() - started >= 0.4
    bad = emu.control("POST", "faults", {"endpoint": "nope", "status": 500})
    assert bad.status_code == 400 and "endpoint" in bad.json()["detail"]


def test_journal_lists_api_requests_only_and_filters_by_endpoint(emu: Running) -> None:
    emu.api("GET", "/list-voices")
    emu.api("GET", "/source-languages")
    emu.control("GET", "settings")
    entries = emu.control("GET", "journal").json()
    assert [entry["endpoint"] for entry in entries] == ["list_voices", "source_languages"]
    assert entries[0]["api_key_sent"] is True
    assert "test-api-key" not in json.dumps(entries)
    filtered = emu.control("GET", "journal", params={"endpoint": "list_voices"}).json()
    assert [entry["path"] for entry in filtered] == ["/apis/list-voices"]
    assert emu.control("GET", "journal", params={"endpoint": "bogus"}).status_code == 400
    emu.control("DELETE", "journal")
    assert emu.control("GET", "journal").json() == []


def test_finish_tasks_ends_a_long_wait(emu: Running) -> None:
    seeded = emu.control("POST", "seed", {"kind": "stories", "tasks": 1, "pending_polls": 10**9}).json()
    task_id = seeded["task_ids"][0]
    assert emu.api("GET", f"/story/{task_id}").json()["status"] == "PENDING"
    assert emu.control("POST", "tasks/finish", {"task_ids": [task_id]}).status_code == 200
    assert emu.api("GET", f"/story/{task_id}").json()["run_id"] == seeded["run_ids"][0]
    missing = emu.control("POST", "tasks/finish", {"task_ids": ["nope"]})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_settings_read_and_patch(emu: Running) -> None:
    settings = emu.control("GET", "settings").json()
    assert settings["bulk_missing"] == "omit" and settings["dubbing_value_shape"] == "object"
    patched = emu.control("PATCH", "settings", {"dubbing_value_shape": "per_language", "url_ttl": 60})
    assert patched.json()["dubbing_value_shape"] == "per_language" and patched.json()["url_ttl"] == 60.0
    run_ids = emu.control("POST", "seed", {"kind": "dubbing", "runs": 1}).json()["run_ids"]
    assert list(emu.api("GET", f"/dub-result/{run_ids[0]}").json()) == ["54"]
    refused = emu.control("PATCH", "settings", {"bulk_missing": "explode", "url_ttl": 5})
    assert refused.status_code == 400 and "bulk_missing" in refused.json()["detail"]
    assert emu.control("GET", "settings").json()["url_ttl"] == 60.0  # nothing changed
    assert emu.control("PATCH", "settings", {"colour": "red"}).status_code == 400
    emu.control("PATCH", "settings", {"dubbing_value_shape": "object", "url_ttl": 3600})


def test_redirects_and_stream_resets(emu: Running) -> None:
    redirect = emu.control("POST", "redirects", {"endpoint": "list_voices", "count": 1, "status": 307})
    assert redirect.status_code == 200
    moved = emu.api("GET", "/list-voices", allow_redirects=False)
    assert moved.status_code == 307 and redirect.json()["foreign_host"] in moved.headers["Location"]
    assert emu.control("POST", "stream-resets", {"nbytes": 100, "count": 1}).ok
    body = {"text": "Hello there from the stream", "language": "en-us", "voice_id": 1}
    with pytest.raises(requests.exceptions.RequestException):
        emu.api("POST", "/tts-stream", json=body).content  # noqa: B018


def test_control_paths_need_no_key_and_wrong_methods_are_405(emu: Running) -> None:
    assert emu.control("GET", "settings", headers={}).status_code == 200
    wrong = emu.control("GET", "seed")
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
    assert emu.control("GET", "nothing-here").status_code == 404


def test_reset_forgets_tasks_runs_faults_and_journal(emu: Running) -> None:
    run_ids = emu.control("POST", "seed", {"kind": "translation", "runs": 2}).json()["run_ids"]
    emu.control("POST", "faults", {"endpoint": "list_voices", "status": 500})
    assert emu.control("POST", "reset").json() == {"ok": True}
    assert emu.control("GET", "journal").json() == []
    assert emu.api("GET", "/list-voices").status_code == 200
    assert emu.api("GET", f"/translation-result/{run_ids[0]}").status_code == 400


def test_without_control_the_paths_are_404_and_journaled_as_unknown() -> None:
    running = _start()
    try:
        assert running.control("GET", "settings").status_code == 404
        assert running.control("POST", "seed", {"kind": "tts", "tasks": 1}).status_code == 404
        assert not any(line.startswith("Control API") for line in running.lines)
    finally:
        _stop(running)
