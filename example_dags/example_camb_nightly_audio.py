"""Every night, the day's texts become audio: a scheduled, partitioned, backfill-safe pipeline."""

from __future__ import annotations

import json
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, task
from airflow.sdk.exceptions import AirflowSkipException

from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator

#: What the nightly DAG produces and the manifest DAG waits for. The asset event of each night
#: carries the list of its files (``{"files": [{"name", "uri", "bytes", "written"}, ...]}``).
NIGHTLY_AUDIO = Asset("camb_nightly_audio")

# Where the texts come from and where the audio goes: Airflow Variables, read when a run renders
# its templates (never while the DAG file is parsed), with these defaults.
SOURCE = "{{ var.value.get('camb_nightly_source', 'file:///tmp/camb-nightly/texts/') }}"
# The run's own partition of the destination: <destination>/<ds>/.
DESTINATION = (
    "{{ var.value.get('camb_nightly_destination', 'file:///tmp/camb-nightly/audio/').rstrip('/') }}/{{ ds }}/"
)
STORAGE_CONN_ID = "{{ var.value.get('camb_nightly_storage_conn_id', '') }}"

DOC_MD = """
### Camb.ai nightly audio: each day's texts into that day's folder

Every night at midnight UTC this DAG speaks the texts of the day that just ended.

1. `read_texts` reads every `*.txt` file in `<source>/<ds>/` (`ds` is the run's data-interval
   date, e.g. `2026-11-30`) into `{"<file stem>": "<text>"}`. A day without texts is skipped:
   the run succeeds, nothing is called, no asset event is sent.
2. `synthesise` speaks each text into `<destination>/<ds>/<stem>.flac` with Camb.ai
   (`POST /tts-stream`). A file that is already there is kept, so re-running or back-filling a
   day makes no API call for the texts it already spoke. Each run writes only its own day.
3. The written audio is the asset `camb_nightly_audio`; its event lists the day's files, and
   `example_camb_nightly_audio_manifest` runs on it.

Configure it with the Variables `camb_nightly_source`, `camb_nightly_destination` (folder URIs:
`file:///...`, `s3://bucket/prefix/`, `gs://...`) and `camb_nightly_storage_conn_id` (e.g. an AWS
connection for both folders). Back-fill days with
`airflow backfill create --dag-id example_camb_nightly_audio --from-date 2026-11-01 --to-date 2026-11-03`.
Needs the `camb_default` connection.
"""

MANIFEST_DOC_MD = """
### Camb.ai nightly audio: a manifest for each day

Scheduled on the asset `camb_nightly_audio`: whenever a night's audio lands, this DAG writes
`manifest.json` (the day's files, their sizes and whether that run wrote them) beside the audio.
Several nights back-filled at once may arrive in one run; each gets its own manifest.
"""


with DAG(
    dag_id="example_camb_nightly_audio",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # A new deployment speaks last night's texts only; older days are back-filled on purpose.
    catchup=False,
    max_active_runs=3,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
) as dag:
    # [START howto_operator_camb_nightly_audio]
    @task
    def read_texts(source: str, storage_conn_id: str, ds: str | None = None) -> dict[str, str]:
        # The run's own partition only: <source>/<ds>/*.txt.
        folder = ObjectStoragePath(f"{source.rstrip('/')}/{ds}/", conn_id=storage_conn_id or None)
        texts = {path.stem: path.read_text(encoding="utf-8") for path in folder.glob("*.txt")}
        if not texts:
            # Skipped, not failed: an empty day is a normal day. The synthesis is skipped with it
            # (and so is the asset event: the manifest DAG does not run for it).
            raise AirflowSkipException(f"No *.txt texts in {folder}: nothing to speak for {ds}.")
        return dict(sorted(texts.items()))

    synthesise = CambTextToSpeechOperator(
        task_id="synthesise",
        texts=read_texts(SOURCE, STORAGE_CONN_ID),
        voice_id=20298,
        language="en-us",
        output_format="flac",
        # The run's own partition: a re-run or a back-fill of one day touches only its folder.
        destination=DESTINATION,
        destination_conn_id=STORAGE_CONN_ID,
        overwrite=False,  # files already there are kept: a re-run makes no API call for them
        max_characters=500_000,  # a night's budget: fail before any request above it
        outlets=[NIGHTLY_AUDIO],
    )
    # [END howto_operator_camb_nightly_audio]


with DAG(
    dag_id="example_camb_nightly_audio_manifest",
    schedule=[NIGHTLY_AUDIO],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=MANIFEST_DOC_MD,
) as manifest_dag:
    # [START howto_asset_camb_nightly_audio]
    @task
    def write_manifests(storage_conn_id: str, triggering_asset_events: Any = None) -> dict[str, int]:
        # One event per night that landed since this DAG last ran (a back-fill can bring several).
        written: dict[str, int] = {}
        for event in triggering_asset_events[NIGHTLY_AUDIO]:
            files = event.extra.get("files", [])
            by_folder: dict[str, list[dict[str, Any]]] = {}
            for file in files:
                by_folder.setdefault(file["uri"].rsplit("/", 1)[0], []).append(file)
            for folder, entries in by_folder.items():
                manifest = ObjectStoragePath(f"{folder}/manifest.json", conn_id=storage_conn_id or None)
                manifest.write_text(json.dumps({"files": entries}, indent=2, sort_keys=True))
                written[str(manifest)] = len(entries)
        return written

    write_manifests(STORAGE_CONN_ID)
    # [END howto_asset_camb_nightly_audio]
