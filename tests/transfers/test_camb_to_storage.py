"""CambTTSToStorageOperator called directly (no DB): validation, hostile servers, memory."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator
from airflow_provider_camb.utils.xcom_keys import FILE_SIZES, MISSING_RUN_IDS
from tests.transfers.conftest import execute, pushed

MiB = 2**20


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "got neither"),
        ({"run_ids": [1], "urls": {"1": "https://x/1.flac"}}, "got both"),
        ({"run_ids": [1], "max_concurrency": 0}, "max_concurrency must be a positive integer"),
        ({"run_ids": [1], "filename_template": "../{run_id}.{ext}"}, "not a safe relative path"),
        ({"run_ids": [1], "filename_template": "{run_id}.{ext}.{voice}"}, "only use {run_id} and {ext}"),
    ],
)
def test_construction_errors_are_clear(kwargs, message):
    with pytest.raises(ValueError) as excinfo:
        CambTTSToStorageOperator(task_id="t", destination="/tmp/x", **kwargs)
    assert message in str(excinfo.value)


def test_a_relative_local_destination_is_refused(camb_emulator):
    (run_id,) = camb_emulator.add_tts_runs(1)
    operator = CambTTSToStorageOperator(task_id="t", destination="relative/dir", run_ids=[run_id])
    with pytest.raises(AirflowFailException, match="relative path"):
        execute(operator)
    assert camb_emulator.journal == []


@pytest.mark.parametrize("form", ["plain", "uri", "object_storage_path"])
def test_destination_forms_all_mean_the_same_folder(camb_emulator, tmp_path, form):
    folder = tmp_path / "new" / "folder"  # does not exist yet
    destination: Any = {
        "plain": str(folder),
        "uri": f"file://{folder}/",
        "object_storage_path": ObjectStoragePath(f"file://{folder}"),
    }[form]
    (run_id,) = camb_emulator.add_tts_runs(1)
    result, _ = execute(CambTTSToStorageOperator(task_id="t", destination=destination, run_ids=[run_id]))
    assert result == {str(run_id): f"file://{folder}/{run_id}.flac"}
    assert (folder / f"{run_id}.flac").stat().st_size == camb_emulator.audio_size(run_id)


def test_a_file_of_the_wrong_size_is_replaced_even_without_overwrite(camb_emulator, tmp_path):
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=10_000)
    (tmp_path / f"{run_id}.flac").write_bytes(b"truncated by an older tool")
    _, ti = execute(CambTTSToStorageOperator(task_id="t", destination=str(tmp_path), run_ids=[run_id]))
    assert pushed(ti)[FILE_SIZES] == {str(run_id): 10_000}
    digest = hashlib.sha256((tmp_path / f"{run_id}.flac").read_bytes()).hexdigest()
    assert digest == camb_emulator.audio_sha256(run_id)


def test_filename_template_can_make_sub_folders(camb_emulator, tmp_path):
    run_ids = camb_emulator.add_tts_runs(2)
    operator = CambTTSToStorageOperator(
        task_id="t", destination=str(tmp_path), run_ids=run_ids, filename_template="tts/{run_id}/audio.{ext}"
    )
    result, _ = execute(operator)
    assert result == {str(r): f"file://{tmp_path}/tts/{r}/audio.flac" for r in run_ids}


# -- a hostile storage host ------------------------------------------------------------------


@dataclass
class HostileServer:
    """Answers any GET/HEAD with 100 bytes and whatever Content-Type a test picks."""

    content_type: str = "audio/flac"
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                server.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", "100")
                self.end_headers()
                if body:
                    self.wfile.write(b"a" * 100)

        return Handler


@pytest.fixture
def hostile():
    state = HostileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/x/..%2F..%2F..%2Fescaped", "audio/../../../escaped"),
        ("/x/1.%2e%2e%2f%2e%2e%2fescaped", "audio/flac"),
        ("/x/..\\..\\escaped.flac%00.sh", "../../x"),
        ("/x/evil.exe", "text/html"),
    ],
)
@pytest.mark.parametrize("overwrite", [True, False])
def test_nothing_a_server_sends_can_move_a_file_out_of_the_destination(
    hostile, tmp_path, path, content_type, overwrite
):
    hostile.content_type = content_type
    destination = tmp_path / "dest"
    operator = CambTTSToStorageOperator(
        task_id="t",
        destination=str(destination),
        urls={"7": hostile.url + path + "?sig=1"},
        overwrite=overwrite,
    )
    result, _ = execute(operator)
    assert result == {"7": f"file://{destination}/7.flac"}
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()] == ["dest/7.flac"]


def test_the_api_key_never_reaches_the_storage_host(hostile, camb_emulator, tmp_path):
    (run_id,) = camb_emulator.add_tts_runs(1)
    # A URL map pointing at another host, and a refresh through the API that needs the key.
    operator = CambTTSToStorageOperator(
        task_id="t", destination=str(tmp_path), urls={str(run_id): hostile.url + "/a.flac?sig=1"}
    )
    execute(operator)
    assert hostile.seen_headers
    for headers in hostile.seen_headers:
        assert "x-api-key" not in headers and "authorization" not in headers
        assert camb_emulator.api_key not in str(headers)


# -- memory ------------------------------------------------------------------------------------


def test_a_64_mib_file_streams_in_bounded_memory(camb_emulator, tmp_path):
    (run_id,) = camb_emulator.add_tts_runs(1, size_bytes=64 * MiB)
    operator = CambTTSToStorageOperator(task_id="t", destination=str(tmp_path), run_ids=[run_id])
    tracemalloc.start()
    try:
        execute(operator)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A few 1 MiB chunks in flight (ours and the emulator's, same process), never the file.
    assert peak < 8 * MiB, peak
    assert (tmp_path / f"{run_id}.flac").stat().st_size == 64 * MiB


# -- failure policy ------------------------------------------------------------------------


def test_download_failures_are_retryable_and_name_every_run(camb_emulator, tmp_path):
    good, bad = camb_emulator.add_tts_runs(2)
    urls = {str(good): camb_emulator.download_url(good), str(bad): camb_emulator.download_url(bad)}
    urls[str(bad)] = urls[str(bad)].replace(f"/{bad}.flac", "/999999.flac")  # bad signature, no refresh
    camb_emulator.fail_next("tts_result", 10, status=503)  # and the API cannot refresh it
    operator = CambTTSToStorageOperator(task_id="t", destination=str(tmp_path), urls=urls)
    ti = mock.MagicMock()
    with pytest.raises(AirflowException) as excinfo:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert not isinstance(excinfo.value, AirflowFailException)  # Airflow may retry it
    assert f"{bad} (" in str(excinfo.value)
    assert "signature=" not in str(excinfo.value)
    assert set(pushed(ti)[FILE_SIZES]) == {str(good)}
    assert set(pushed(ti)[MISSING_RUN_IDS]) == {str(bad)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{good}.flac"]


def test_a_rejected_api_key_fails_without_retries(camb_emulator, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        f'{{"conn_type": "camb", "host": "{camb_emulator.base_url}", "password": "wrong"}}',
    )
    operator = CambTTSToStorageOperator(
        task_id="t", run_ids=camb_emulator.add_tts_runs(2), destination=str(tmp_path)
    )
    with pytest.raises(AirflowFailException, match="API key was rejected"):
        execute(operator)
    assert [entry.status for entry in camb_emulator.journal] == [401]
    assert list(tmp_path.iterdir()) == []


def test_a_run_not_served_yet_fails_retryably_after_delivering_the_others(camb_emulator, tmp_path):
    ready = camb_emulator.add_tts_runs(2)
    (unfinished,) = camb_emulator.add_tts_runs(1, finished=False)
    operator = CambTTSToStorageOperator(task_id="t", run_ids=[*ready, unfinished], destination=str(tmp_path))

    with pytest.raises(AirflowException, match=rf"no audio for 1 of 3 run IDs: {unfinished}") as caught:
        execute(operator)

    # Not AirflowFailException: an unfinished run appears later, so the task's retries apply.
    assert not isinstance(caught.value, AirflowFailException)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{run_id}.flac" for run_id in ready]
