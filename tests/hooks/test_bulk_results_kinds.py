"""CambHook.get_bulk_results for every batch kind: paths, chunking and each documented value shape."""

from __future__ import annotations

import math

import pytest

from airflow_provider_camb.exceptions import CambRunsMissingError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.hooks.result_kinds import RESULT_KINDS
from tests.camb_api_fakes import BASE_URL

VALUES = {
    "tts": ("https://s/1.flac", "https://s/1.flac"),
    "text_to_sound": ({"output_url": "https://s/1.wav"}, "https://s/1.wav"),
    "translation": ({"texts": ["Hola", "Adiós"]}, ["Hola", "Adiós"]),
    "transcription": (
        {"transcript": [{"start": 0, "end": 1.5, "text": "Hi", "speaker": "A"}]},
        [{"start": 0, "end": 1.5, "text": "Hi", "speaker": "A"}],
    ),
    "audio_separation": (
        {"foreground_audio_url": "https://s/f.wav", "background_audio_url": "https://s/b.wav"},
        {"foreground_audio_url": "https://s/f.wav", "background_audio_url": "https://s/b.wav"},
    ),
    "stories": (
        {"audio_url": "https://s/a.flac", "dialogue_url": "https://s/d.json", "transcript": []},
        {"audio_url": "https://s/a.flac", "dialogue_url": "https://s/d.json", "transcript": []},
    ),
    "dubbing": (
        {"audio_url": "https://s/a.flac", "video_url": "https://s/v.mp4", "transcript": []},
        {"audio_url": "https://s/a.flac", "video_url": "https://s/v.mp4", "transcript": []},
    ),
}


@pytest.mark.parametrize("kind", sorted(RESULT_KINDS))
def test_seven_runs_of_any_kind_come_back_in_two_calls_to_its_bulk_endpoint(
    camb_connection, requests_mock, kind
):
    raw, read = VALUES[kind]
    bulk = requests_mock.post(
        f"{BASE_URL}{RESULT_KINDS[kind].bulk_path}",
        json=lambda request, context: {str(i): raw for i in request.json()["run_ids"]},
    )

    results = CambHook().get_bulk_results(kind, list(range(1, 8)))

    assert results == dict.fromkeys(range(1, 8), read)
    assert [len(call.json()["run_ids"]) for call in bulk.request_history] == [4, 3]
    assert bulk.call_count == math.ceil(7 / 5)


def test_a_dubbing_result_per_language_is_kept_per_language(camb_connection, requests_mock):
    per_language = {
        "es-es": {"audio_url": "https://s/es.flac", "transcript": []},
        "fr-fr": {"audio_url": "https://s/fr.flac", "video_url": "https://s/fr.mp4"},
    }
    requests_mock.post(f"{BASE_URL}/dubbing-results", json={"1": per_language, "2": per_language})

    assert CambHook().get_bulk_results("dubbing", [1, 2])[1] == per_language


def test_a_bare_transcript_list_is_read_like_the_wrapped_one(camb_connection, requests_mock):
    items = [{"start": 0, "end": 2, "text": "Hello", "speaker": "S1"}]
    requests_mock.post(f"{BASE_URL}/transcription-results", json={"1": items, "2": {"transcript": items}})

    assert CambHook().get_bulk_results("transcription", [1, 2]) == {1: items, 2: items}


def test_a_lone_run_goes_to_the_kinds_single_result_endpoint(camb_connection, requests_mock):
    single = requests_mock.get(f"{BASE_URL}/translation-result/9", json={"texts": ["Bonjour"]})

    assert CambHook().get_bulk_results("Translation", [9]) == {9: ["Bonjour"]}
    assert single.call_count == 1


def test_a_result_without_its_urls_is_missing_with_the_reason(camb_connection, requests_mock):
    requests_mock.post(
        f"{BASE_URL}/audio-separation-results",
        json={"1": {"foreground_audio_url": "https://s/f.wav"}, "2": VALUES["audio_separation"][0]},
    )

    with pytest.raises(CambRunsMissingError) as caught:
        CambHook().get_bulk_results("audio_separation", [1, 2])

    assert list(caught.value.urls) == [2]
    assert "background_audio_url" in str(caught.value.missing[1])


def test_an_unknown_kind_is_named_before_any_request(camb_connection, requests_mock):
    with pytest.raises(ValueError, match="result_kind must be one of tts, dubbing"):
        CambHook().get_bulk_results("voices", [1, 2])
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(("kind", "path"), [("dubbing", "/dub/t-1"), ("stories", "/story/t-1")])
def test_the_status_of_any_kind_is_asked_at_its_path(camb_connection, requests_mock, kind, path):
    requests_mock.get(f"{BASE_URL}{path}", json={"status": "SUCCESS", "run_id": 5})

    status = CambHook().get_task_status("t-1", kind)

    assert (status.is_success, status.run_id) == (True, 5)
