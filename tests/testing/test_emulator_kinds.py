"""Every batch kind over real sockets: create, status, single and bulk results, files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_camb.hooks.result_kinds import RESULT_KINDS
from airflow_provider_camb.testing import ENDPOINTS

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.testing.conftest import Api

BODIES: dict[str, dict[str, Any]] = {
    "dubbing": {"video_url": "https://example.com/v.mp4", "source_language": 1, "target_language": 54},
    "translation": {"texts": ["Hello", "World"], "source_language": 1, "target_language": 54},
    "text_to_sound": {"prompt": "Thunder", "duration": 2.0, "audio_type": "sound"},
    "transcription": {"language": 1, "media_url": "https://example.com/a.wav"},
    "audio_separation": {"media_url": "https://example.com/a.wav"},
    "stories": {"text": "One line. Another line.", "source_language": 1, "narrator_voice_id": 7},
}
KINDS = list(BODIES)
VALUE_KEYS = {
    "dubbing": {"audio_url", "video_url", "transcript"},
    "translation": {"texts"},
    "text_to_sound": {"output_url"},
    "transcription": {"transcript"},
    "audio_separation": {"foreground_audio_url", "background_audio_url"},
    "stories": {"audio_url", "dialogue_url", "transcript"},
}


def _path(template: str, value: object) -> str:
    return template.replace("{task_id}", str(value)).replace("{run_id}", str(value))


def test_every_kind_has_its_four_endpoint_names() -> None:
    for kind in RESULT_KINDS:
        for name in (f"create_{kind}", f"{kind}_status", f"{kind}_result", f"{kind}_results"):
            assert name in ENDPOINTS


@pytest.mark.parametrize("kind", KINDS)
def test_a_created_task_goes_pending_then_success_and_its_run_answers_single_and_bulk(
    camb_emulator: CambEmulator, api: Api, kind: str
) -> None:
    spec = RESULT_KINDS[kind]
    camb_emulator.default_pending_polls = 1
    created = api.post(spec.create_path, json=BODIES[kind])
    assert created.status_code == 200, created.text
    task_id = created.json()["task_id"]
    first = api.get(_path(spec.status_path, task_id)).json()
    second = api.get(_path(spec.status_path, task_id)).json()
    assert first == {"status": "PENDING", "run_id": None, "exception_reason": None, "message": None}
    assert second["status"] == "SUCCESS" and isinstance(second["run_id"], int)
    run_id = second["run_id"]
    single = api.get(_path(spec.result_path, run_id))
    assert single.status_code == 200
    assert set(single.json()) == VALUE_KEYS[kind]
    other = camb_emulator.add_runs(kind, 1)[0]
    bulk = api.post(spec.bulk_path, json={"run_ids": [run_id, other]})
    assert bulk.status_code == 200
    assert set(bulk.json()) == {str(run_id), str(other)}
    assert all(set(value) == VALUE_KEYS[kind] for value in bulk.json().values())
    names = [entry.endpoint for entry in camb_emulator.journal]
    assert names == [
        f"create_{kind}",
        f"{kind}_status",
        f"{kind}_status",
        f"{kind}_result",
        f"{kind}_results",
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_create_body_is_422_naming_the_required_fields(api: Api, kind: str) -> None:
    response = api.post(RESULT_KINDS[kind].create_path, json={})
    assert response.status_code == 422
    assert response.json()["detail"], response.text
    assert all(err["loc"][0] == "body" and err["msg"] for err in response.json()["detail"])


def test_dubbing_without_a_target_language_is_422_on_target_language(api: Api) -> None:
    body = {"video_url": "https://example.com/v.mp4", "source_language": 1}
    response = api.post("/dub", json=body)
    assert response.status_code == 422
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [
        (["body", "target_language"], "missing")
    ]


def test_translation_with_a_non_string_text_is_422_at_its_index(api: Api) -> None:
    response = api.post("/translate", json={**BODIES["translation"], "texts": ["ok", 3]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "texts", 1]


def test_translation_answers_the_created_texts_prefixed_with_the_target(
    camb_emulator: CambEmulator, api: Api
) -> None:
    task_id = api.post("/translate", json=BODIES["translation"]).json()["task_id"]
    run_id = camb_emulator.run_id_for_task(task_id)
    assert api.get(f"/translation-result/{run_id}").json() == {"texts": ["[54] Hello", "[54] World"]}


def test_dubbing_per_language_shape_keys_each_target_language(camb_emulator: CambEmulator, api: Api) -> None:
    body = {"video_url": "https://example.com/v.mp4", "source_language": 1, "target_languages": [54, 76]}
    run_id = camb_emulator.add_runs("dubbing", 1, payload=body)[0]
    flat = api.get(f"/dub-result/{run_id}").json()
    assert set(flat) == {"audio_url", "video_url", "transcript"}
    camb_emulator.dubbing_value_shape = "per_language"
    per_language = api.get(f"/dub-result/{run_id}").json()
    assert set(per_language) == {"54", "76"}
    assert per_language["76"]["transcript"][0]["text"].startswith("[76] ")
    assert set(per_language["76"]["transcript"][0]) == {"start", "end", "text", "speaker"}
    audio_54 = requests.get(per_language["54"]["audio_url"], timeout=10)
    audio_76 = requests.get(per_language["76"]["audio_url"], timeout=10)
    assert audio_54.content[:4] == audio_76.content[:4] == b"fLaC"
    assert audio_54.content != audio_76.content
    video = requests.get(per_language["54"]["video_url"], timeout=10)
    assert (video.status_code, video.headers["Content-Type"]) == (200, "video/mp4")
    assert video.content[4:8] == b"ftyp"


def test_transcription_list_shape_answers_a_bare_list(camb_emulator: CambEmulator, api: Api) -> None:
    run_ids = camb_emulator.add_runs("transcription", 2)
    assert isinstance(api.get(f"/transcription-result/{run_ids[0]}").json()["transcript"], list)
    camb_emulator.transcription_value_shape = "list"
    bulk = api.post("/transcription-results", json={"run_ids": run_ids}).json()
    assert all(isinstance(value, list) and value[0]["speaker"] for value in bulk.values())


def test_audio_separation_serves_two_different_real_audio_files(
    camb_emulator: CambEmulator, api: Api
) -> None:
    run_id = camb_emulator.add_runs("audio_separation", 1, audio_format="wav")[0]
    value = api.get(f"/audio-separation-result/{run_id}").json()
    fore = requests.get(value["foreground_audio_url"], timeout=10)
    back = requests.get(value["background_audio_url"], timeout=10)
    assert fore.headers["Content-Type"] == back.headers["Content-Type"] == "audio/wav"
    assert fore.content[:4] == back.content[:4] == b"RIFF"
    assert fore.content != back.content
    assert "/files/audio_separation/" in value["foreground_audio_url"]


def test_stories_serve_a_json_dialogue_and_the_story_transcript(
    camb_emulator: CambEmulator, api: Api
) -> None:
    run_id = camb_emulator.add_runs("stories", 1, payload=BODIES["stories"])[0]
    value = api.get(f"/story-result/{run_id}").json()
    assert [item["text"] for item in value["transcript"]] == ["One line.", "Another line."]
    dialogue = requests.get(value["dialogue_url"], timeout=10)
    assert dialogue.headers["Content-Type"] == "application/json"
    assert dialogue.json()["transcript"] == value["transcript"]


def test_text_to_sound_audio_lasts_the_requested_duration(camb_emulator: CambEmulator, api: Api) -> None:
    task_id = api.post("/text-to-sound", json=BODIES["text_to_sound"]).json()["task_id"]
    run_id = camb_emulator.run_id_for_task(task_id)
    assert run_id is not None
    assert camb_emulator.audio_info(run_id)["duration_seconds"] == pytest.approx(2.0)


def test_kind_urls_are_signed_for_get_only_and_expire(camb_emulator: CambEmulator, api: Api) -> None:
    run_id = camb_emulator.add_runs("text_to_sound", 1)[0]
    url = api.get(f"/text-to-sound-result/{run_id}").json()["output_url"]
    assert requests.head(url, timeout=10).status_code == 403
    assert requests.get(url.replace("signature=", "signature=0"), timeout=10).status_code == 403
    expired = camb_emulator.download_url(run_id, ttl=-1, file="output")
    assert "Request has expired" in requests.get(expired, timeout=10).text


def test_multipart_creates_transcription_separation_and_story(camb_emulator: CambEmulator, api: Api) -> None:
    upload = {"media_file": ("speech.wav", b"RIFF....WAVE", "audio/wav")}
    assert api.post("/transcribe", data={"language": "1"}, files=upload).status_code == 200
    assert api.post("/audio-separation", files=upload).status_code == 200
    story = {"file": ("story.txt", b"First. Second. Third.", "text/plain")}
    created = api.post("/story", data={"source_language": "1", "narrator_voice_id": "7"}, files=story)
    assert created.status_code == 200
    run_id = camb_emulator.run_id_for_task(created.json()["task_id"])
    assert len(api.get(f"/story-result/{run_id}").json()["transcript"]) == 3
    entry = camb_emulator.requests("create_transcription")[0]
    assert entry.json == {
        "language": "1",
        "media_file": {"filename": "speech.wav", "content_type": "audio/wav", "size": 12},
    }


def test_multipart_transcription_without_media_is_422(api: Api) -> None:
    response = api.post("/transcribe", files={"language": (None, "1")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "media_file"]


def test_bulk_leaves_out_other_kinds_unknown_and_unfinished_runs(
    camb_emulator: CambEmulator, api: Api
) -> None:
    dubbing = camb_emulator.add_runs("dubbing", 1)[0]
    tts = camb_emulator.add_tts_runs(1)[0]
    unfinished = camb_emulator.add_runs("dubbing", 1, finished=False)[0]
    answer = api.post("/dubbing-results", json={"run_ids": [dubbing, tts, unfinished, 99999]}).json()
    assert list(answer) == [str(dubbing)]
    assert list(api.post("/tts-results", json={"run_ids": [dubbing, tts]}).json()) == [str(tts)]
    camb_emulator.bulk_missing = "reject"
    rejected = api.post("/dubbing-results", json={"run_ids": [dubbing, tts]})
    assert rejected.status_code == 400
    assert str(tts) in rejected.json()["detail"]


def test_bulk_validates_run_ids_like_tts(api: Api) -> None:
    response = api.post("/stories-results", json={"run_ids": [1]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "too_short"


def test_another_kinds_run_or_task_is_unknown_to_the_single_endpoints(
    camb_emulator: CambEmulator, api: Api
) -> None:
    dubbing_run = camb_emulator.add_runs("dubbing", 1)[0]
    tts_task = camb_emulator.add_tts_tasks(1)[0]
    assert api.get(f"/tts-result/{dubbing_run}").json() == {
        "detail": f"Run ID {dubbing_run} is not a valid TTS run"
    }
    assert api.get(f"/translation-result/{dubbing_run}").status_code == 400
    assert api.get(f"/dub/{tts_task}").status_code == 404
    assert api.get("/dub-result/abc").status_code == 422


def test_unfinished_kind_run_is_400_until_finished(camb_emulator: CambEmulator, api: Api) -> None:
    run_id = camb_emulator.add_runs("text_to_sound", 1, finished=False)[0]
    response = api.get(f"/text-to-sound-result/{run_id}")
    assert response.json() == {"detail": f"Run ID {run_id} has not finished yet"}
    camb_emulator.finish_run(run_id)
    assert api.get(f"/text-to-sound-result/{run_id}").status_code == 200


def test_seeded_failing_and_pending_tasks_of_any_kind(camb_emulator: CambEmulator, api: Api) -> None:
    failed = camb_emulator.add_tasks("transcription", 1, outcome="PAYMENT_REQUIRED")[0]
    assert camb_emulator.run_id_for_task(failed) is None
    status = api.get(f"/transcribe/{failed}").json()
    assert (status["status"], status["exception_reason"]) == ("PAYMENT_REQUIRED", "PAYMENT_REQUIRED")
    waiting = camb_emulator.add_tasks("Audio-Separation", 1, pending_polls=10**9)[0]
    assert api.get(f"/audio-separation/{waiting}").json()["status"] == "PENDING"
    camb_emulator.finish_tasks([waiting])
    assert api.get(f"/audio-separation/{waiting}").json()["run_id"] == camb_emulator.run_id_for_task(waiting)


def test_faults_and_latency_apply_to_kind_endpoints(camb_emulator: CambEmulator, api: Api) -> None:
    task_id = camb_emulator.add_tasks("stories", 1)[0]
    camb_emulator.fail_next("stories_status", count=1, status=503, retry_after=2)
    failed = api.get(f"/story/{task_id}")
    assert (failed.status_code, failed.headers["Retry-After"]) == (503, "2")
    assert api.get(f"/story/{task_id}").status_code == 200
    assert [e.status for e in camb_emulator.requests("stories_status")] == [503, 200]


def test_seeding_rejects_an_unknown_kind_and_a_bad_payload(camb_emulator: CambEmulator) -> None:
    with pytest.raises(ValueError, match="result_kind must be one of"):
        camb_emulator.add_runs("karaoke", 1)
    with pytest.raises(ValueError, match="not a valid translation create body"):
        camb_emulator.add_tasks("translation", 1, payload={"texts": []})
