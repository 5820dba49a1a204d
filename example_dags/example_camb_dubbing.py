"""Dub a list of videos with Camb.ai: create dubbing tasks, wait, store the dubbed audio and video."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_camb.operators.camb import CambBulkResultsOperator
from airflow_provider_camb.sensors.camb import CambTaskSensor
from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator

DOC_MD = """
### Camb.ai dubbing into storage

1. `create_dubs` creates one dubbing task per video URL (`POST /dub`); a create whose answer is
   lost is reported as "may exist", never sent again blindly (dubbing is billed).
2. `wait_for_dubs` waits, deferred to the triggerer, until every task has succeeded.
3. `fetch_dubs` fetches every run's result (`POST /dubbing-results`, five runs per call):
   `{"<run_id>": {"audio_url": ..., "video_url": ..., "transcript": [...]}}`.
4. `store_dubs` copies every file of every result into `destination`
   (`<run_id>_audio_url.flac`, `<run_id>_video_url.mp4`), whole or not at all.

Languages are Camb.ai's integer language IDs. `make demo`'s emulator serves every endpoint.
"""

with DAG(
    dag_id="example_camb_dubbing",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
    params={
        "videos": Param(
            ["https://example.com/videos/intro.mp4", "https://example.com/videos/tour.mp4"],
            type="array",
            items={"type": "string"},
            title="Video URLs",
        ),
        "source_language": Param(1, type="integer", title="Source language ID (1: en-us)"),
        "target_language": Param(54, type="integer", title="Target language ID (54: es-es)"),
        "destination": Param("file:///tmp/camb-dubs/", type="string", title="Destination folder"),
    },
) as dag:
    # [START howto_operator_camb_dubbing]
    @task
    def create_dubs(params: dict[str, Any] | None = None) -> list[str]:
        from airflow_provider_camb.hooks.camb import CambHook

        assert params is not None
        hook = CambHook()
        try:
            return [
                hook.create_task(
                    {
                        "video_url": video,
                        "source_language": params["source_language"],
                        "target_language": params["target_language"],
                    },
                    "dubbing",
                )
                for video in params["videos"]
            ]
        finally:
            hook.close()

    wait_for_dubs = CambTaskSensor(
        task_id="wait_for_dubs",
        result_kind="dubbing",
        camb_task_ids=create_dubs(),
        deferrable=True,
        poke_interval=10,
        timeout=6 * 60 * 60,
    )

    fetch_dubs = CambBulkResultsOperator(
        task_id="fetch_dubs",
        result_kind="dubbing",
        run_ids=wait_for_dubs.output,
    )

    store_dubs = CambTTSToStorageOperator(
        task_id="store_dubs",
        result_kind="dubbing",
        urls=fetch_dubs.output,
        destination="{{ params.destination }}",
        # Every file of every result: <run_id>_audio_url.flac, <run_id>_video_url.mp4
    )
    # return_value: {"<run_id>": {"audio_url": "<destination URI>", "video_url": "<destination URI>"}}
    # [END howto_operator_camb_dubbing]
