"""Fidelity: the official camb-sdk, pointed at the emulator, works as against the real API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import requests

camb_client = pytest.importorskip("camb.client")
camb_errors = pytest.importorskip("camb.errors")

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_camb.testing import CambEmulator

_http_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _http_clients:
        _http_clients.pop().close()


def _client(emu: CambEmulator) -> object:
    http = httpx.Client(timeout=10)
    _http_clients.append(http)
    return camb_client.CambAI(api_key=emu.api_key, base_url=emu.base_url, httpx_client=http)


def test_the_sdk_creates_a_task_polls_it_and_fetches_results(camb_emulator: CambEmulator) -> None:
    camb_emulator.default_pending_polls = 2
    tts = _client(camb_emulator).text_to_speech  # type: ignore[attr-defined]
    task_ids = [tts.create_tts(text=f"Sentence {i}", voice_id=20298, language=1).task_id for i in range(2)]
    run_ids = []
    for task_id in task_ids:
        statuses = []
        for _ in range(5):
            result = tts.get_tts_result(task_id)
            statuses.append(result.status)
            if result.status == "SUCCESS":
                break
        assert statuses == ["PENDING", "PENDING", "SUCCESS"]
        run_ids.append(result.run_id)
    bulk = tts.get_tts_results(run_ids=run_ids)
    assert set(bulk) == {str(r) for r in run_ids}
    single = tts.get_tts_run_info(run_ids[0], output_type="file_url")
    data = requests.get(single.output_url, timeout=10).content
    assert data[:4] == b"fLaC"


def test_the_sdk_parses_both_bulk_value_shapes(camb_emulator: CambEmulator) -> None:
    run_ids = camb_emulator.add_tts_runs(2)
    tts = _client(camb_emulator).text_to_speech  # type: ignore[attr-defined]
    as_urls = tts.get_tts_results(run_ids=run_ids)
    camb_emulator.bulk_value_shape = "object"
    as_objects = tts.get_tts_results(run_ids=run_ids)
    assert all(isinstance(v, str) for v in as_urls.values())
    assert all(v.output_url.startswith(camb_emulator.server_url) for v in as_objects.values())


@pytest.mark.parametrize("how_many", [1, 6])
def test_the_sdk_sees_422_for_a_bad_bulk_payload(camb_emulator: CambEmulator, how_many: int) -> None:
    run_ids = camb_emulator.add_tts_runs(how_many)
    tts = _client(camb_emulator).text_to_speech  # type: ignore[attr-defined]
    with pytest.raises(camb_errors.UnprocessableEntityError) as err:
        tts.get_tts_results(run_ids=run_ids)
    assert err.value.status_code == 422
    assert err.value.body.detail[0].loc == ["body", "run_ids"]


def test_the_sdk_reads_a_failed_task(camb_emulator: CambEmulator) -> None:
    (task_id,) = camb_emulator.add_tts_tasks(1, outcome="PAYMENT_REQUIRED")
    result = _client(camb_emulator).text_to_speech.get_tts_result(task_id)  # type: ignore[attr-defined]
    assert result.status == "PAYMENT_REQUIRED"
    assert result.exception_reason == "PAYMENT_REQUIRED"


def test_the_sdk_retries_a_429_honouring_retry_after(camb_emulator: CambEmulator) -> None:
    run_ids = camb_emulator.add_tts_runs(2)
    camb_emulator.fail_next("tts_results", count=1, status=429, retry_after=0)
    tts = _client(camb_emulator).text_to_speech  # type: ignore[attr-defined]
    assert set(tts.get_tts_results(run_ids=run_ids)) == {str(r) for r in run_ids}
    assert [e.status for e in camb_emulator.requests("tts_results")] == [429, 200]


def test_the_sdk_lists_languages_and_voices(camb_emulator: CambEmulator) -> None:
    client = _client(camb_emulator)
    assert client.languages.get_source_languages()  # type: ignore[attr-defined]
    assert client.voice_cloning.list_voices()  # type: ignore[attr-defined]


def test_the_sdk_streams_tts_and_reads_a_422_for_a_locale_the_model_lacks(
    camb_emulator: CambEmulator,
) -> None:
    import io

    import soundfile as sf
    from camb import StreamTtsOutputConfiguration

    tts = _client(camb_emulator).text_to_speech  # type: ignore[attr-defined]
    chunks = tts.tts(
        text="Hello from the SDK",
        language="en-us",
        voice_id=20298,
        speech_model="mars-pro",
        output_configuration=StreamTtsOutputConfiguration(format="mp3"),
    )
    info = sf.info(io.BytesIO(b"".join(chunks)))
    assert (info.format, info.samplerate) == ("MP3", 48000)
    with pytest.raises(camb_errors.UnprocessableEntityError) as err:
        b"".join(tts.tts(text="Bonjour", language="fr-fr", voice_id=20298, speech_model="mars-instruct"))
    assert err.value.body.detail[0].loc == ["body", "language"]
