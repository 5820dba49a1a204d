"""CambBulkResultsOperator over real HTTP against the emulator, for every batch kind."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from airflow_provider_camb.exceptions import CambRunsMissingError
from airflow_provider_camb.hooks.result_kinds import RESULT_KINDS
from airflow_provider_camb.operators.camb import CambBulkResultsOperator


def run(operator: CambBulkResultsOperator) -> tuple[Any, mock.MagicMock]:
    ti = mock.MagicMock()
    return operator.execute({"ti": ti}), ti  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(RESULT_KINDS))
def test_eleven_runs_of_every_kind_in_three_valid_bulk_calls(camb_emulator, kind):
    run_ids = camb_emulator.add_runs(kind, 11)

    results, _ = run(CambBulkResultsOperator(task_id="fetch", result_kind=kind, run_ids=run_ids))

    assert list(results) == [str(run_id) for run_id in run_ids]
    endpoint = f"{kind}_results" if kind != "tts" else "tts_results"
    calls = camb_emulator.requests(endpoint)
    assert [len(call.json["run_ids"]) for call in calls] == [4, 4, 3]
    assert {call.status for call in calls} == {200}
    for value in results.values():
        if kind in ("tts", "text_to_sound"):
            assert value.startswith(camb_emulator.server_url)
        elif kind in ("translation", "transcription"):
            assert isinstance(value, list) and value
        else:
            assert isinstance(value, dict)


def test_runs_of_another_kind_are_named_missing_and_the_rest_delivered(camb_emulator):
    dubs = camb_emulator.add_runs("dubbing", 3)
    (sound,) = camb_emulator.add_runs("text_to_sound", 1)

    with pytest.raises(CambRunsMissingError) as caught:
        run(CambBulkResultsOperator(task_id="fetch", result_kind="dubbing", run_ids=[*dubs, sound]))

    assert f"Camb.ai returned no dubbing result for 1 of 4 run IDs: {sound}" in str(caught.value)
    assert set(caught.value.urls) == set(dubs)


def test_a_per_language_dubbing_answer_is_kept_per_language(camb_emulator):
    camb_emulator.dubbing_value_shape = "per_language"
    run_ids = camb_emulator.add_runs("dubbing", 2)

    results, _ = run(CambBulkResultsOperator(task_id="fetch", result_kind="dubbing", run_ids=run_ids))

    for value in results.values():
        assert value and all("audio_url" in item for item in value.values())
