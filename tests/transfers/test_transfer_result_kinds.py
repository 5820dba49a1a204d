"""CambTTSToStorageOperator with ``result_kind`` other than TTS: every file a result carries."""

from __future__ import annotations

import hashlib
import urllib.request
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.storage.naming import InvalidFilenameTemplateError
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator
from airflow_provider_camb.utils.xcom_keys import FILE_SIZES, MISSING_RUN_IDS
from tests.transfers.conftest import Backend, execute, pushed, transfer_dag, unique_dag_id

#: ``result_urls`` field -> (the emulator's file name, its extension), per kind.
FILES = {
    "dubbing": {"audio_url": ("audio", "flac"), "video_url": ("video", "mp4")},
    "audio_separation": {
        "foreground_audio_url": ("foreground_audio", "flac"),
        "background_audio_url": ("background_audio", "flac"),
    },
    "stories": {"audio_url": ("audio", "flac"), "dialogue_url": ("dialogue", "json")},
    "text_to_sound": {"output_url": ("output", "flac")},
}
PER_LANGUAGE_PAYLOAD = {
    "video_url": "https://example.com/video.mp4",
    "source_language": 1,
    "target_languages": [54, 76],
}
PER_LANGUAGE_FILES = {
    f"{lang}_{kind}_url": (f"{kind}-{lang}", ext)
    for lang in (54, 76)
    for kind, ext in (("audio", "flac"), ("video", "mp4"))
}


def served(emu, run_id: int, file: str) -> bytes:
    """What the emulator's storage host serves for one file of a run (fetched over HTTP)."""
    with urllib.request.urlopen(emu.download_url(run_id, file=file), timeout=10) as response:
        return response.read()


def expected_files(emu, run_ids, files) -> dict[str, dict[str, bytes]]:
    """``{run_id: {"<run_id>_<field>.<ext>": bytes}}``; the journal is cleared afterwards."""
    expected = {
        str(run_id): {
            f"{run_id}_{field}.{ext}": served(emu, run_id, file) for field, (file, ext) in files.items()
        }
        for run_id in run_ids
    }
    emu.clear_journal()
    return expected


def assert_delivered(folder, run_ids, files, expected, result, ti) -> None:
    assert result == {
        str(run_id): {field: f"file://{folder}/{run_id}_{field}.{ext}" for field, (_, ext) in files.items()}
        for run_id in run_ids
    }
    assert pushed(ti)[FILE_SIZES] == {
        str(run_id): {
            field: len(expected[str(run_id)][f"{run_id}_{field}.{ext}"]) for field, (_, ext) in files.items()
        }
        for run_id in run_ids
    }
    names = sorted(name for per_run in expected.values() for name in per_run)
    assert sorted(p.name for p in folder.iterdir()) == names  # nothing else: no temp leftovers
    for per_run in expected.values():
        for name, data in per_run.items():
            assert (folder / name).read_bytes() == data, name
    assert MISSING_RUN_IDS not in pushed(ti)


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["translation", "transcription"])
def test_kinds_without_files_are_refused_at_construction(kind):
    with pytest.raises(ValueError, match=f"{kind} results have none"):
        CambTTSToStorageOperator(task_id="t", destination="/tmp/x", run_ids=[1, 2], result_kind=kind)


def test_an_unknown_kind_is_refused_naming_the_kinds():
    with pytest.raises(ValueError, match="result_kind must be one of"):
        CambTTSToStorageOperator(task_id="t", destination="/tmp/x", run_ids=[1], result_kind="podcast")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{run_id}.{ext}", "must contain {field}"),
        ("{run_id}_{field}.{ext}.{voice}", "may only use {run_id}, {field} and {ext}"),
        ("../{run_id}_{field}.{ext}", "not a safe relative path"),
    ],
)
def test_templates_of_other_kinds_must_tell_the_fields_apart(template, message):
    with pytest.raises(InvalidFilenameTemplateError) as excinfo:
        CambTTSToStorageOperator(
            task_id="t", destination="/tmp/x", run_ids=[1], result_kind="dubbing", filename_template=template
        )
    assert message in str(excinfo.value)


def test_tts_still_refuses_the_field_placeholder():
    with pytest.raises(InvalidFilenameTemplateError, match=r"only use \{run_id\} and \{ext\}"):
        CambTTSToStorageOperator(
            task_id="t", destination="/tmp/x", run_ids=[1], filename_template="{run_id}_{field}.{ext}"
        )


# -- every kind, every file ------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FILES))
def test_every_file_of_every_run_lands_byte_identical(camb_emulator, tmp_path, kind):
    emu = camb_emulator
    run_ids = emu.add_runs(kind, 3, size_bytes=40_000)
    files = FILES[kind]
    expected = expected_files(emu, run_ids, files)

    result, ti = execute(
        CambTTSToStorageOperator(task_id="t", destination=str(tmp_path), run_ids=run_ids, result_kind=kind)
    )

    assert_delivered(tmp_path, run_ids, files, expected, result, ti)
    bulk = emu.requests(f"{kind}_results")
    assert [e.json for e in bulk] == [{"run_ids": run_ids}]  # one bulk call for 3 runs
    downloads = emu.requests("download")
    assert len(downloads) == len(run_ids) * len(files)
    assert {(e.method, e.range) for e in downloads} == {("GET", None)}
    assert not any(e.api_key_sent for e in downloads)


def test_per_language_dubbing_copies_each_languages_audio_and_video(camb_emulator, tmp_path):
    emu = camb_emulator
    emu.dubbing_value_shape = "per_language"
    run_ids = emu.add_runs("dubbing", 2, payload=PER_LANGUAGE_PAYLOAD, size_bytes=20_000)
    expected = expected_files(emu, run_ids, PER_LANGUAGE_FILES)

    result, ti = execute(
        CambTTSToStorageOperator(
            task_id="t", destination=str(tmp_path), run_ids=run_ids, result_kind="dubbing"
        )
    )

    assert_delivered(tmp_path, run_ids, PER_LANGUAGE_FILES, expected, result, ti)
    # The two languages are different recordings, so nothing was written twice under two names.
    first = expected[str(run_ids[0])]
    assert first[f"{run_ids[0]}_54_audio_url.flac"] != first[f"{run_ids[0]}_76_audio_url.flac"]


def test_the_bulk_results_operators_output_is_accepted_as_urls(camb_emulator, tmp_path):
    emu = camb_emulator
    run_ids = emu.add_runs("audio_separation", 2)
    files = FILES["audio_separation"]
    expected = expected_files(emu, run_ids, files)
    # What CambBulkResultsOperator(result_kind="audio_separation") pushes as its return_value.
    hook = CambHook()
    try:
        urls = {
            str(run_id): value for run_id, value in hook.get_bulk_results("audio_separation", run_ids).items()
        }
    finally:
        hook.close()
    emu.clear_journal()

    result, ti = execute(
        CambTTSToStorageOperator(
            task_id="t", destination=str(tmp_path), urls=urls, result_kind="audio_separation"
        )
    )

    assert_delivered(tmp_path, run_ids, files, expected, result, ti)
    assert emu.requests("audio_separation_results") == []  # the URLs came with the input


def test_a_custom_template_puts_each_run_in_its_own_folder(camb_emulator, tmp_path):
    emu = camb_emulator
    (run_id,) = emu.add_runs("stories", 1)
    result, _ = execute(
        CambTTSToStorageOperator(
            task_id="t",
            destination=str(tmp_path),
            run_ids=[run_id],
            result_kind="stories",
            filename_template="story_{run_id}/{field}.{ext}",
        )
    )
    assert result == {
        str(run_id): {
            "audio_url": f"file://{tmp_path}/story_{run_id}/audio_url.flac",
            "dialogue_url": f"file://{tmp_path}/story_{run_id}/dialogue_url.json",
        }
    }
    assert (tmp_path / f"story_{run_id}" / "dialogue_url.json").read_bytes() == served(
        emu, run_id, "dialogue"
    )


# -- re-runs, refresh, missing runs -------------------------------------------------------------


def test_a_second_run_copies_nothing_only_ranged_gets(camb_emulator, tmp_path):
    emu = camb_emulator
    run_ids = emu.add_runs("dubbing", 3)

    def run() -> tuple[Any, mock.MagicMock]:
        return execute(
            CambTTSToStorageOperator(
                task_id="t", destination=str(tmp_path), run_ids=run_ids, result_kind="dubbing"
            )
        )

    first, first_ti = run()
    emu.clear_journal()
    second, second_ti = run()

    assert second == first
    assert pushed(second_ti)[FILE_SIZES] == pushed(first_ti)[FILE_SIZES]
    downloads = emu.requests("download")
    assert [(e.method, e.range, e.status) for e in downloads] == [("GET", "bytes=0-0", 206)] * 6


def test_an_expired_url_of_one_field_is_refreshed_through_the_bulk_endpoint(camb_emulator, tmp_path):
    emu = camb_emulator
    run_ids = emu.add_runs("dubbing", 2)
    files = FILES["dubbing"]
    expected = expected_files(emu, run_ids, files)
    # The video URLs say they have expired; the audio URLs are good.
    urls = {
        str(run_id): {
            "audio_url": emu.download_url(run_id, file="audio"),
            "video_url": emu.download_url(run_id, file="video", ttl=-60),
        }
        for run_id in run_ids
    }

    result, ti = execute(
        CambTTSToStorageOperator(task_id="t", destination=str(tmp_path), urls=urls, result_kind="dubbing")
    )

    assert_delivered(tmp_path, run_ids, files, expected, result, ti)
    # Both fresh video URLs came from one POST /dubbing-results, before any download.
    assert [e.json for e in emu.requests("dubbing_results")] == [{"run_ids": run_ids}]
    assert emu.requests("dubbing_result") == []
    # The good audio URLs were used as given; each fresh video URL once.
    downloads = [e.path.rsplit("/", 1)[1] for e in emu.requests("download")]
    assert sorted(name for name in downloads if name.endswith(".flac")) == [
        f"{r}-audio.flac" for r in run_ids
    ]
    assert len([name for name in downloads if name.endswith(".mp4")]) == 2
    assert {e.status for e in emu.requests("download")} == {200}


def test_a_url_the_storage_host_refuses_is_refreshed_for_that_field_only(camb_emulator, tmp_path):
    emu = camb_emulator
    run_ids = emu.add_runs("stories", 2)
    files = FILES["stories"]
    expected = expected_files(emu, run_ids, files)
    urls = {
        str(run_id): {field: emu.download_url(run_id, file=file) for field, (file, _) in files.items()}
        for run_id in run_ids
    }
    # A tampered signature: only the storage host's 403 tells, mid-transfer.
    urls[str(run_ids[1])]["dialogue_url"] = urls[str(run_ids[1])]["dialogue_url"].replace(
        "signature=", "signature=0"
    )

    result, ti = execute(
        CambTTSToStorageOperator(task_id="t", destination=str(tmp_path), urls=urls, result_kind="stories")
    )

    assert_delivered(tmp_path, run_ids, files, expected, result, ti)
    # One run to refresh goes to the single-run endpoint (the bulk one takes 2 to 5 IDs).
    assert [e.path for e in emu.requests("stories_result")] == [f"/apis/story-result/{run_ids[1]}"]
    assert emu.requests("stories_results") == []
    assert sorted(e.status for e in emu.requests("download")) == [200, 200, 200, 200, 403]


def test_expired_urls_of_many_runs_share_bulk_calls(camb_emulator, tmp_path):
    emu = camb_emulator
    run_ids = emu.add_runs("audio_separation", 7)
    urls = {
        str(run_id): {
            field: emu.download_url(run_id, file=file, ttl=-60)
            for field, (file, _) in FILES["audio_separation"].items()
        }
        for run_id in run_ids
    }

    result, _ = execute(
        CambTTSToStorageOperator(
            task_id="t", destination=str(tmp_path), urls=urls, result_kind="audio_separation"
        )
    )

    assert sorted(result) == sorted(str(r) for r in run_ids)
    # 14 expired URLs of 7 runs: ceil(7 / 5) = 2 bulk calls, each run asked for once.
    calls = [e.json["run_ids"] for e in emu.requests("audio_separation_results")]
    assert len(calls) == 2
    assert sorted(r for ids in calls for r in ids) == sorted(run_ids)


def test_runs_the_api_cannot_serve_are_named_and_the_others_delivered(camb_emulator, tmp_path):
    emu = camb_emulator
    run_ids = emu.add_runs("stories", 2)
    unfinished = emu.add_runs("stories", 1, finished=False)

    operator = CambTTSToStorageOperator(
        task_id="t", destination=str(tmp_path), run_ids=run_ids + unfinished, result_kind="stories"
    )
    with pytest.raises(
        AirflowException, match=f"Camb.ai served no audio for 1 of 3 run IDs: {unfinished[0]}"
    ):
        execute(operator)

    result, ti = execute(
        CambTTSToStorageOperator(
            task_id="t",
            destination=str(tmp_path),
            run_ids=run_ids + unfinished,
            result_kind="stories",
            fail_on_missing=False,
        )
    )
    assert sorted(result) == sorted(str(r) for r in run_ids)
    assert set(result[str(run_ids[0])]) == {"audio_url", "dialogue_url"}
    assert list(pushed(ti)[MISSING_RUN_IDS]) == [str(unfinished[0])]


def test_a_url_that_keeps_expiring_fails_naming_run_and_field(camb_emulator, tmp_path):
    emu = camb_emulator
    (run_id,) = emu.add_runs("text_to_sound", 1)
    emu.url_ttl = -60  # every URL the API hands out is already expired
    operator = CambTTSToStorageOperator(
        task_id="t", destination=str(tmp_path), run_ids=[run_id], result_kind="text_to_sound"
    )
    with pytest.raises(AirflowException) as excinfo:
        execute(operator)
    message = str(excinfo.value)
    assert message.startswith("1 of 1 Camb.ai text_to_sound files could not be transferred"), message
    assert f"{run_id} (output_url: " in message
    assert list(tmp_path.iterdir()) == []


# -- a real DAG run --------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
def test_a_dag_run_delivers_dubbed_audio_and_video_to_both_backends(
    dag_runner, request, camb_emulator, backend: Backend
):
    emu = camb_emulator
    run_ids = emu.add_runs("dubbing", 2, size_bytes=50_000)
    expected = {
        f"{run_id}_{field}.{ext}": hashlib.sha256(served(emu, run_id, file)).hexdigest()
        for run_id in run_ids
        for field, (file, ext) in FILES["dubbing"].items()
    }
    dag = transfer_dag(
        unique_dag_id(request),
        destination=backend.destination,
        destination_conn_id=backend.conn_id,
        run_ids=run_ids,
        result_kind="dubbing",
    )

    dag_run = dag_runner.run(dag)

    assert dag_run.state == "success", dag_runner.task_states(dag_run)
    assert dag_runner.xcom(dag_run, "transfer") == {
        str(run_id): {
            "audio_url": backend.uri(f"{run_id}_audio_url.flac"),
            "video_url": backend.uri(f"{run_id}_video_url.mp4"),
        }
        for run_id in run_ids
    }
    assert backend.listing() == sorted(expected)
    for name, digest in expected.items():
        assert backend.digest(name) == digest, name
