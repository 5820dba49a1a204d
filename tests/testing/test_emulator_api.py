"""The JSON API over real sockets: auth, tasks, single and bulk results, listings."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.testing.conftest import Api

TTS_BODY = {"text": "Hello from the emulator", "voice_id": 20298, "language": 1}


def _detail_types(response: requests.Response) -> list[tuple[list[Any], str]]:
    return [(err["loc"], err["type"]) for err in response.json()["detail"]]


def test_base_url_is_the_api_root_on_loopback(camb_emulator: CambEmulator) -> None:
    assert camb_emulator.base_url.startswith("http://127.0.0.1:")
    assert camb_emulator.base_url.endswith("/apis")
    conn = json.loads(camb_emulator.connection_uri_json())
    assert conn == {"conn_type": "camb", "host": camb_emulator.base_url, "password": "test-api-key"}


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}])
def test_a_missing_or_wrong_api_key_is_401_with_a_fastapi_detail(
    camb_emulator: CambEmulator, headers: dict[str, str]
) -> None:
    response = requests.get(camb_emulator.base_url + "/source-languages", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}


def test_create_tts_answers_a_uuid_task_id(api: Api) -> None:
    response = api.post("/tts", json=TTS_BODY)
    assert response.status_code == 200
    uuid.UUID(response.json()["task_id"])


def test_create_tts_without_voice_and_language_is_422_listing_each_field(api: Api) -> None:
    response = api.post("/tts", json={"text": "hi"})
    assert response.status_code == 422
    assert _detail_types(response) == [(["body", "voice_id"], "missing"), (["body", "language"], "missing")]
    assert all(err["msg"] == "Field required" for err in response.json()["detail"])


def test_create_tts_with_a_string_language_is_422(api: Api) -> None:
    response = api.post("/tts", json={**TTS_BODY, "language": "en-us"})
    assert response.status_code == 422
    assert _detail_types(response) == [(["body", "language"], "int_type")]


def test_invalid_json_is_422_json_invalid(api: Api) -> None:
    response = api.post("/tts", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_a_created_task_succeeds_and_its_run_is_fetchable(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.default_pending_polls = 1
    task_id = api.post("/tts", json=TTS_BODY).json()["task_id"]
    first = api.get(f"/tts/{task_id}").json()
    assert first == {"status": "PENDING", "run_id": None, "exception_reason": None, "message": None}
    second = api.get(f"/tts/{task_id}").json()
    assert second["status"] == "SUCCESS"
    assert second["run_id"] == camb_emulator.run_id_for_task(task_id)
    assert api.get(f"/tts-result/{second['run_id']}").status_code == 200


def test_a_task_is_pending_for_the_seeded_number_of_polls(api: Api, camb_emulator: CambEmulator) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(1, pending_polls=3)
    statuses = [api.get(f"/tts/{task_id}").json()["status"] for _ in range(5)]
    assert statuses == ["PENDING", "PENDING", "PENDING", "SUCCESS", "SUCCESS"]


def test_a_task_is_pending_for_the_seeded_number_of_seconds(api: Api, camb_emulator: CambEmulator) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(1, pending_seconds=0.3)
    assert api.get(f"/tts/{task_id}").json()["status"] == "PENDING"
    import time

    time.sleep(0.35)
    assert api.get(f"/tts/{task_id}").json()["status"] == "SUCCESS"


def test_the_run_of_a_pending_task_is_not_fetchable_yet(api: Api, camb_emulator: CambEmulator) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(1, pending_polls=1)
    run_id = camb_emulator.run_id_for_task(task_id)
    assert run_id is not None
    response = api.get(f"/tts-result/{run_id}", params={"output_type": "file_url"})
    assert response.status_code == 400
    assert "not finished" in response.json()["detail"]
    missing = api.post("/tts-results", json={"run_ids": [run_id, run_id + 1000]}).json()
    assert missing == {}


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("ERROR", "PROCESSING_ERROR"),
        ("TIMEOUT", "PROCESSING_ERROR"),
        ("PAYMENT_REQUIRED", "PAYMENT_REQUIRED"),
    ],
)
def test_a_failed_task_reports_its_reason_and_message(
    api: Api, camb_emulator: CambEmulator, outcome: str, reason: str
) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(1, outcome=outcome)
    answer = api.get(f"/tts/{task_id}").json()
    assert answer["status"] == outcome
    assert answer["run_id"] is None
    assert answer["exception_reason"] == reason
    assert answer["message"]
    assert camb_emulator.run_id_for_task(task_id) is None


def test_a_scripted_reason_and_message_are_reported_verbatim(api: Api, camb_emulator: CambEmulator) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(
        1, outcome="ERROR", exception_reason="HARMFUL_CONTENT_DETECTED", message={"info": "nope"}
    )
    answer = api.get(f"/tts/{task_id}").json()
    assert answer["exception_reason"] == "HARMFUL_CONTENT_DETECTED"
    assert answer["message"] == {"info": "nope"}


def test_an_unknown_task_is_404_by_default_and_422_when_switched(
    api: Api, camb_emulator: CambEmulator
) -> None:
    unknown = str(uuid.uuid4())
    response = api.get(f"/tts/{unknown}")
    assert response.status_code == 404
    assert unknown in response.json()["detail"]
    camb_emulator.unknown_task_status = 422
    response = api.get(f"/tts/{unknown}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "task_id"]


def test_tts_result_serves_the_audio_bytes_by_default(api: Api, camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, duration_seconds=0.5)
    response = api.get(f"/tts-result/{run_id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/flac"
    assert response.content == b"".join(camb_emulator.iter_audio(run_id))
    assert int(response.headers["Content-Length"]) == camb_emulator.audio_size(run_id)


def test_tts_result_with_file_url_answers_a_working_signed_url(api: Api, camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, audio_format="wav")
    response = api.get(f"/tts-result/{run_id}", params={"output_type": "file_url"})
    assert response.status_code == 200
    url = response.json()["output_url"]
    assert f"/files/tts/{run_id}.wav?" in url
    download = requests.get(url, timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "audio/wav"


def test_tts_result_for_an_unknown_run_is_400(api: Api) -> None:
    response = api.get("/tts-result/999999")
    assert response.status_code == 400
    assert "999999" in response.json()["detail"]


def test_tts_result_for_an_unfinished_run_is_400_until_finished(
    api: Api, camb_emulator: CambEmulator
) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1, finished=False)
    assert api.get(f"/tts-result/{run_id}").status_code == 400
    camb_emulator.finish_run(run_id)
    assert api.get(f"/tts-result/{run_id}").status_code == 200


def test_tts_result_with_a_task_id_instead_of_a_run_id_is_422(api: Api) -> None:
    response = api.get(f"/tts-result/{uuid.uuid4()}")
    assert response.status_code == 422
    assert _detail_types(response) == [(["path", "run_id"], "int_parsing")]


def test_tts_result_with_an_unknown_output_type_is_422(api: Api, camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    response = api.get(f"/tts-result/{run_id}", params={"output_type": "mp3"})
    assert response.status_code == 422
    assert _detail_types(response) == [(["query", "output_type"], "enum")]


def test_bulk_answers_urls_keyed_by_run_id_string(api: Api, camb_emulator: CambEmulator) -> None:
    run_ids = camb_emulator.add_tts_runs(3)
    response = api.post("/tts-results", json={"run_ids": run_ids})
    assert response.status_code == 200
    answer = response.json()
    assert list(answer) == [str(r) for r in run_ids]
    for run_id, url in answer.items():
        assert isinstance(url, str)
        assert f"/files/tts/{run_id}.flac?" in url


def test_bulk_answers_output_url_objects_when_switched(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.bulk_value_shape = "object"
    run_ids = camb_emulator.add_tts_runs(2)
    answer = api.post("/tts-results", json={"run_ids": run_ids}).json()
    assert set(answer) == {str(r) for r in run_ids}
    assert all(set(value) == {"output_url"} for value in answer.values())


def test_bulk_leaves_out_unknown_and_unfinished_ids_by_default(api: Api, camb_emulator: CambEmulator) -> None:
    (done,) = camb_emulator.add_tts_runs(1)
    (unfinished,) = camb_emulator.add_tts_runs(1, finished=False)
    answer = api.post("/tts-results", json={"run_ids": [done, unfinished, 424242]}).json()
    assert list(answer) == [str(done)]


def test_bulk_reject_mode_answers_400_naming_the_missing_ids(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.bulk_missing = "reject"
    (done,) = camb_emulator.add_tts_runs(1)
    response = api.post("/tts-results", json={"run_ids": [done, 424242]})
    assert response.status_code == 400
    assert "424242" in response.json()["detail"]
    assert str(done) not in response.json()["detail"]


def test_bulk_rejects_a_single_id_with_422(api: Api, camb_emulator: CambEmulator) -> None:
    (run_id,) = camb_emulator.add_tts_runs(1)
    response = api.post("/tts-results", json={"run_ids": [run_id]})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error == {
        "type": "too_short",
        "loc": ["body", "run_ids"],
        "msg": "List should have at least 2 items after validation, not 1",
    }


def test_bulk_rejects_six_ids_with_422(api: Api, camb_emulator: CambEmulator) -> None:
    run_ids = camb_emulator.add_tts_runs(6)
    response = api.post("/tts-results", json={"run_ids": run_ids})
    assert response.status_code == 422
    assert _detail_types(response) == [(["body", "run_ids"], "too_long")]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"run_ids": [1001, 1001]}, [(["body", "run_ids"], "value_error")]),
        ({"run_ids": [1001, 0]}, [(["body", "run_ids", 1], "greater_than")]),
        ({"run_ids": [-5, 1001]}, [(["body", "run_ids", 0], "greater_than")]),
        ({"run_ids": [True, 1001]}, [(["body", "run_ids", 0], "int_type")]),
        ({"run_ids": ["1001", 1002]}, [(["body", "run_ids", 0], "int_type")]),
        ({"run_ids": []}, [(["body", "run_ids"], "too_short")]),
        ({"run_ids": "1001,1002"}, [(["body", "run_ids"], "list_type")]),
        ({"ids": [1001, 1002]}, [(["body", "run_ids"], "missing")]),
        ([1001, 1002], [(["body"], "model_attributes_type")]),
    ],
)
def test_bulk_validates_like_run_ids_request_payload(
    api: Api, payload: Any, expected: list[tuple[list[Any], str]]
) -> None:
    response = api.post("/tts-results", json=payload)
    assert response.status_code == 422
    assert _detail_types(response) == expected


@pytest.mark.parametrize(
    ("path", "short_names"), [("/source-languages", "en-us"), ("/target-languages", "ja-jp")]
)
def test_language_listings_answer_small_lists(api: Api, path: str, short_names: str) -> None:
    languages = api.get(path).json()
    assert short_names in {lang["short_name"] for lang in languages}
    assert all({"id", "language", "short_name"} <= set(lang) for lang in languages)


def test_list_voices_answers_voices_with_ids_and_names(api: Api) -> None:
    voices = api.get("/list-voices").json()
    assert voices
    assert all(isinstance(v["id"], int) and v["voice_name"] for v in voices)


def test_unknown_paths_are_404_and_wrong_methods_405(api: Api) -> None:
    assert api.get("/no-such-thing").status_code == 404
    response = api.get("/tts-results")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_the_journal_records_requests_but_never_the_key(api: Api, camb_emulator: CambEmulator) -> None:
    run_ids = camb_emulator.add_tts_runs(2)
    api.post("/tts-results", json={"run_ids": run_ids}, params={"trace": "1"})
    requests.get(camb_emulator.base_url + "/list-voices", timeout=10)
    bulk, voices = camb_emulator.journal
    assert (bulk.method, bulk.path, bulk.endpoint, bulk.status) == (
        "POST",
        "/apis/tts-results",
        "tts_results",
        200,
    )
    assert bulk.json == {"run_ids": run_ids}
    assert bulk.query == {"trace": "1"}
    assert bulk.api_key_sent is True
    assert (voices.endpoint, voices.status, voices.api_key_sent) == ("list_voices", 401, False)
    assert camb_emulator.requests("tts_results") == [bulk]
    assert "test-api-key" not in repr(camb_emulator.journal)
    camb_emulator.clear_journal()
    assert camb_emulator.journal == []


def test_responses_keep_the_connection_alive(camb_emulator: CambEmulator) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", camb_emulator.port, timeout=10)
    try:
        for path in ("/apis/source-languages", "/apis/no-such-thing", "/apis/list-voices"):
            conn.request("GET", path, headers={"x-api-key": camb_emulator.api_key})
            response = conn.getresponse()
            response.read()
            assert not response.will_close
        assert conn.sock is not None  # the same socket served all three
    finally:
        conn.close()


def test_stop_closes_idle_keep_alive_connections(camb_emulator: CambEmulator) -> None:
    from airflow_provider_camb.testing import CambEmulator

    emu = CambEmulator(api_key="k").start()
    session = requests.Session()
    assert session.get(emu.base_url + "/list-voices", headers={"x-api-key": "k"}, timeout=5).ok
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(emu.base_url + "/list-voices", headers={"x-api-key": "k"}, timeout=5)
    emu.stop()  # a second stop is harmless


def test_finish_tasks_ends_a_wait_that_would_never_end(camb_emulator: CambEmulator, api: Any) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(1, pending_polls=10**9)
    assert api.get(f"/tts/{task_id}").json()["status"] == "PENDING"

    camb_emulator.finish_tasks([task_id])

    answer = api.get(f"/tts/{task_id}").json()
    assert (answer["status"], answer["run_id"]) == ("SUCCESS", camb_emulator.run_id_for_task(task_id))
