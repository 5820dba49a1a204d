"""POST /tts-stream over real sockets: audio per format, chunked bodies, 422s, faults, journal."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import requests
import soundfile as sf

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.testing.conftest import Api

TEXT = "A short sentence to speak."
BODY: dict[str, Any] = {"text": TEXT, "language": "en-us", "voice_id": 20298}
# Samples a decoded file may differ from len(text) * seconds_per_char * rate.  WAV and FLAC only
# round to a whole sample.  An MP3 encoder pads to whole 1152-sample frames; libsndfile trims the
# padding through the LAME header, but allow one frame (24 ms at 48 kHz) for other decoders.
TOLERANCE = {"wav": 1, "flac": 1, "mp3": 1152}


def _stream(api: Api, output: dict[str, Any] | None = None, **fields: Any) -> requests.Response:
    body = {**BODY, **fields}
    if output is not None:
        body["output_configuration"] = output
    return api.post("/tts-stream", json=body)


def _errors(response: requests.Response) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(err["loc"], err["type"]) for err in response.json()["detail"]]


def _message(response: requests.Response) -> str:
    (err,) = response.json()["detail"]
    return str(err["msg"])


@pytest.mark.parametrize(
    ("audio_format", "content_type"),
    [("wav", "audio/wav"), ("flac", "audio/flac"), ("mp3", "audio/mpeg")],
)
@pytest.mark.parametrize("sample_rate", [24000, 48000])
def test_each_format_decodes_to_the_text_s_duration(
    api: Api, audio_format: str, content_type: str, sample_rate: int
) -> None:
    response = _stream(api, {"format": audio_format, "sample_rate": sample_rate})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Credits-Required"] == str(len(TEXT))
    info = sf.info(io.BytesIO(response.content))
    samples, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    assert info.format == audio_format.upper()
    assert (rate, info.channels) == (sample_rate, 1)
    expected = len(TEXT) * 0.06 * sample_rate
    assert abs(len(samples) - expected) <= TOLERANCE[audio_format]
    assert abs(samples).max() > 5000  # a tone, not silence


@pytest.mark.parametrize("audio_format", ["wav", "flac", "mp3", "pcm_s16le"])
def test_the_body_is_chunked_without_a_content_length(api: Api, audio_format: str) -> None:
    response = _stream(api, {"format": audio_format})
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers


def test_pcm_s16le_is_the_wav_samples_without_a_header(api: Api) -> None:
    wav = _stream(api, {"format": "wav", "sample_rate": 16000})
    pcm = _stream(api, {"format": "pcm_s16le", "sample_rate": 16000})
    assert pcm.status_code == 200
    assert pcm.headers["Content-Type"] == "application/octet-stream"
    assert pcm.content == wav.content[44:]
    assert len(pcm.content) == 2 * round(len(TEXT) * 0.06 * 16000)


def test_stream_seconds_per_char_sets_the_length(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.stream_seconds_per_char = 0.001
    response = _stream(api, {"format": "pcm_s16le", "sample_rate": 22050})
    assert len(response.content) == 2 * round(len(TEXT) * 0.001 * 22050)


def test_the_same_text_gives_the_same_audio_and_another_text_other_audio(api: Api) -> None:
    first = _stream(api, {"format": "flac"}).content
    again = _stream(api, {"format": "flac"}).content
    other = _stream(api, {"format": "flac"}, text=TEXT.upper()).content
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    ("model", "rate"),
    [
        (None, 22050),
        ("mars-8.1-flash-beta", 22050),
        ("mars-flash", 22050),
        ("mars-instruct", 22050),
        ("mars-pro", 48000),
        ("mars-8.1-pro-beta", 48000),
    ],
)
def test_the_sample_rate_defaults_to_the_model_s(api: Api, model: str | None, rate: int) -> None:
    response = _stream(api, {"format": "wav"}, speech_model=model)
    assert sf.info(io.BytesIO(response.content)).samplerate == rate


def test_the_optional_fields_of_the_api_are_accepted(api: Api) -> None:
    response = _stream(
        api,
        {"format": "wav", "sample_rate": None, "apply_enhancement": False, "duration": 1.5},
        speech_model="mars-instruct",
        user_instructions="Speak slowly and warmly.",
        enhance_named_entities_pronunciation=True,
        voice_settings={"speaking_rate": 1.0, "maintain_source_accent": True},
        inference_options={"stability": 0.5, "temperature": 1.0},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(("text", "kind"), [("hi", "string_too_short"), ("x" * 3001, "string_too_long")])
def test_text_outside_3_to_3000_characters_is_422(api: Api, text: str, kind: str) -> None:
    assert _errors(_stream(api, text=text)) == [(["body", "text"], kind)]


def test_a_request_without_the_required_fields_is_422_naming_each(api: Api) -> None:
    response = api.post("/tts-stream", json={"text": "hello"})
    assert _errors(response) == [(["body", "language"], "missing"), (["body", "voice_id"], "missing")]


@pytest.mark.parametrize(
    ("voice_id", "kind"),
    [(0, "greater_than_equal"), (-3, "greater_than_equal"), ("20298", "int_type"), (True, "int_type")],
)
def test_voice_id_must_be_an_integer_of_at_least_1(api: Api, voice_id: Any, kind: str) -> None:
    response = _stream(api, voice_id=voice_id)
    assert _errors(response) == [(["body", "voice_id"], kind)]


@pytest.mark.parametrize("language", ["EN-US", "en_US", "xx-yy", "english"])
def test_an_unknown_or_uppercase_language_is_422_listing_the_known_ones(api: Api, language: str) -> None:
    response = _stream(api, language=language)
    assert _errors(response) == [(["body", "language"], "enum")]
    assert _message(response) == (
        "Input should be 'en-us', 'en-uk', 'es-es', 'fr-fr', 'de-de', 'hi-in', 'ja-jp' or 'zh-cn'"
    )


def test_an_unknown_speech_model_is_422_listing_the_models(api: Api) -> None:
    response = _stream(api, speech_model="mars-7")
    assert _errors(response) == [(["body", "speech_model"], "enum")]
    assert _message(response) == (
        "Input should be 'mars-8.1-flash-beta', 'mars-8.1-pro-beta', 'mars-flash', 'mars-pro'"
        " or 'mars-instruct'"
    )


@pytest.mark.parametrize(
    ("model", "language", "supported"),
    [
        ("mars-instruct", "fr-fr", "'en-us' or 'en-uk'"),
        ("mars-pro", "ja-jp", "'en-us', 'en-uk', 'es-es', 'fr-fr', 'de-de' or 'hi-in'"),
        ("mars-flash", "zh-cn", "'en-us', 'en-uk', 'es-es', 'fr-fr', 'de-de', 'hi-in' or 'ja-jp'"),
    ],
)
def test_a_language_the_model_does_not_speak_is_422_listing_the_model_s_locales(
    api: Api, model: str, language: str, supported: str
) -> None:
    response = _stream(api, speech_model=model, language=language)
    assert _errors(response) == [(["body", "language"], "value_error")]
    assert (
        _message(response) == f"Value error, {model} does not support {language!r}; it supports {supported}"
    )


def test_the_8_1_models_speak_every_known_language(api: Api) -> None:
    for model in ("mars-8.1-flash-beta", "mars-8.1-pro-beta"):
        assert _stream(api, {"format": "pcm_s16le"}, speech_model=model, language="zh-cn").ok


@pytest.mark.parametrize("model", [None, "mars-flash", "mars-8.1-pro-beta"])
def test_user_instructions_are_422_unless_the_model_is_mars_instruct(api: Api, model: str | None) -> None:
    response = _stream(api, speech_model=model, user_instructions="Whisper it.")
    assert _errors(response) == [(["body", "user_instructions"], "value_error")]
    assert _message(response).startswith("Value error, user_instructions is only supported by mars-instruct")


def test_user_instructions_shorter_than_3_characters_are_422(api: Api) -> None:
    response = _stream(api, speech_model="mars-instruct", user_instructions="no")
    assert _errors(response) == [(["body", "user_instructions"], "string_too_short")]


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("voice_settings", [1.0], "dict_type"),
        ("inference_options", "fast", "dict_type"),
        ("enhance_named_entities_pronunciation", "yes", "bool_type"),
        ("output_configuration", "wav", "dict_type"),
    ],
)
def test_optional_fields_of_the_wrong_type_are_422(api: Api, field: str, value: Any, kind: str) -> None:
    assert _errors(_stream(api, **{field: value})) == [(["body", field], kind)]


def test_a_format_the_api_does_not_know_is_422_listing_the_api_s_formats(api: Api) -> None:
    response = _stream(api, {"format": "ogg"})
    assert _errors(response) == [(["body", "output_configuration", "format"], "enum")]
    assert "'adts'" in _message(response)
    assert "'pcm_f32be'" in _message(response)


@pytest.mark.parametrize("audio_format", ["adts", "pcm_s16be", "pcm_s32le", "pcm_f32le"])
def test_an_api_format_the_emulator_cannot_produce_is_422_naming_what_it_can(
    api: Api, audio_format: str
) -> None:
    response = _stream(api, {"format": audio_format})
    assert _errors(response) == [(["body", "output_configuration", "format"], "value_error")]
    assert _message(response) == (
        f"Value error, the emulator cannot produce {audio_format!r};"
        " it produces 'wav', 'flac', 'mp3' or 'pcm_s16le'"
    )


MP3_RATES = "8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"format": "wav", "sample_rate": 4000}, "the emulator produces 8000 to 192000 Hz, not 4000"),
        ({"format": "flac", "sample_rate": 384000}, "the emulator produces 8000 to 192000 Hz, not 384000"),
        ({"format": "mp3", "sample_rate": 96000}, f"mp3 carries only {MP3_RATES} Hz, not 96000"),
        ({"format": "mp3", "sample_rate": 44000}, f"mp3 carries only {MP3_RATES} Hz, not 44000"),
    ],
)
def test_a_sample_rate_the_format_cannot_carry_is_422(api: Api, output: dict[str, Any], message: str) -> None:
    response = _stream(api, output)
    assert _errors(response) == [(["body", "output_configuration", "sample_rate"], "value_error")]
    assert _message(response) == f"Value error, {message}"


def test_mp3_without_soundfile_is_422_saying_what_is_missing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry makes ``import soundfile`` raise ImportError, as in an environment without it.
    monkeypatch.setitem(sys.modules, "soundfile", None)
    response = _stream(api, {"format": "mp3"}, text="Not in the encoder's cache.")
    assert _errors(response) == [(["body", "output_configuration", "format"], "value_error")]
    assert "needs the soundfile package to produce mp3" in _message(response)
    assert _stream(api, {"format": "flac"}).status_code == 200


def test_the_emulator_streams_wav_without_importing_soundfile_or_numpy() -> None:
    code = (
        "import json, sys, urllib.request\n"
        "from airflow_provider_camb.testing import CambEmulator\n"
        "with CambEmulator() as emu:\n"
        "    body = json.dumps({'text': 'hello', 'language': 'en-us', 'voice_id': 1}).encode()\n"
        "    request = urllib.request.Request(emu.base_url + '/tts-stream', data=body,\n"
        "        headers={'x-api-key': emu.api_key, 'Content-Type': 'application/json'})\n"
        "    assert urllib.request.urlopen(request, timeout=10).read()[:4] == b'RIFF'\n"
        "assert 'soundfile' not in sys.modules and 'numpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_429_with_retry_after_then_the_stream(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.fail_next("tts_stream", 1, status=429, retry_after=2)
    limited = _stream(api)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json() == {"detail": "Rate limit exceeded"}
    assert _stream(api).status_code == 200
    assert [e.status for e in camb_emulator.requests("tts_stream")] == [429, 200]


def test_a_503_then_the_stream(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.fail_next("tts_stream", status=503)
    unavailable = _stream(api)
    assert unavailable.status_code == 503
    assert unavailable.json() == {"detail": "Service Unavailable"}
    assert _stream(api).status_code == 200


def _read_until_it_breaks(response: requests.Response) -> bytes:
    received = b""
    with pytest.raises(requests.exceptions.RequestException):
        for chunk in response.iter_content(4096):
            received += chunk
    return received


def test_a_reset_stream_breaks_a_streaming_client_before_the_whole_body(
    api: Api, camb_emulator: CambEmulator
) -> None:
    camb_emulator.stream_seconds_per_char = 0.2  # about 5 s of audio, a few hundred KB
    whole = _stream(api, {"format": "wav"}).content
    camb_emulator.reset_streams_after(10_000, count=2)
    for _ in range(2):
        with api.session.post(
            camb_emulator.base_url + "/tts-stream",
            json={**BODY, "output_configuration": {"format": "wav"}},
            stream=True,
            timeout=10,
        ) as response:
            assert response.status_code == 200
            received = _read_until_it_breaks(response)
        assert len(received) <= 10_000 < len(whole)
        assert whole.startswith(received)
    assert _stream(api, {"format": "wav"}).content == whole


def test_a_stream_cut_waits_for_a_successful_stream(api: Api, camb_emulator: CambEmulator) -> None:
    camb_emulator.reset_streams_after(100)
    assert _stream(api, text="no").status_code == 422  # refused requests do not use the cut
    with api.session.post(
        camb_emulator.base_url + "/tts-stream", json=BODY, stream=True, timeout=10
    ) as response:
        assert len(_read_until_it_breaks(response)) <= 100


def test_clear_faults_drops_a_pending_stream_cut(api: Api, camb_emulator: CambEmulator) -> None:
    whole = _stream(api).content
    camb_emulator.reset_streams_after(100)
    camb_emulator.clear_faults()
    assert _stream(api).content == whole


def test_the_journal_keeps_each_stream_request_s_body(api: Api, camb_emulator: CambEmulator) -> None:
    output = {"format": "flac", "sample_rate": 24000}
    _stream(api, output)
    _stream(api, {"format": "adts"}, language="de-de")
    first, second = camb_emulator.requests("tts_stream")
    assert first.json == {**BODY, "output_configuration": output}
    assert (first.json["text"], first.json["voice_id"], first.json["language"]) == (TEXT, 20298, "en-us")
    assert first.status == 200
    assert second.json["language"] == "de-de"
    assert second.json["output_configuration"] == {"format": "adts"}
    assert second.status == 422
    assert first.api_key_sent is True
