"""Text to speech with CambTextToSpeechOperator: a folder of chapter texts, one audio file per chapter."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, ObjectStoragePath, Param, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator

DOC_MD = """
### Camb.ai text to speech: a folder of chapters to audio files

1. `read_chapters` reads every `*.txt` file in `source` (any ObjectStoragePath URI:
   `file:///...`, `s3://bucket/prefix/`, `gs://...`) into `{"<file stem>": "<text>"}`.
2. `synthesise` speaks each chapter with Camb.ai (`POST /tts-stream`) into one finished audio
   file per chapter, `destination/<stem>.<output_format>`. Chapters longer than 3,000 characters
   are split at paragraphs and sentences, synthesised concurrently and joined into one file.
   Files already there are kept: a re-run makes no API call for them.

Trigger it with your folders ("Trigger DAG w/ config"). For S3, set `destination` to
`s3://bucket/prefix/` and `destination_conn_id` to an AWS connection; to read `source` through a
connection, put its ID in the URI (`s3://<conn_id>@bucket/chapters/`). File stems become file
names, so keep them to letters, digits and `_ - . = +`. Needs the `camb_default` connection.
`make demo` runs this DAG against the bundled emulator. `example_camb_text_to_speech_mapped`
does the same with one mapped task instance per chapter.
"""

MAPPED_DOC_MD = """
### Camb.ai text to speech, one task instance per chapter

The same as `example_camb_text_to_speech`, but `synthesise_chapter` is mapped over the chapters:
each chapter is its own task instance, with its own retries and its own log. Files already in
`destination` are kept, so this DAG and the unmapped one can share a destination.
"""


def _params() -> dict[str, Param]:
    # A function, not a constant: each DAG gets Param objects of its own.
    return {
        "source": Param(
            "file:///tmp/camb-chapters/",
            type="string",
            title="Chapter folder",
            description=(
                "A folder URI holding one *.txt file per chapter (file://, s3://, gs:// ...); "
                "a storage connection goes in the URI: s3://<conn_id>@bucket/chapters/."
            ),
        ),
        "destination": Param(
            "file:///tmp/camb-audio-book/",
            type="string",
            title="Destination folder",
            description="A folder URI: file:///abs/dir/, s3://bucket/prefix/, gs://bucket/prefix/ ...",
        ),
        "destination_conn_id": Param(
            None,
            type=["null", "string"],
            title="Storage connection",
            description="The connection for the destination (e.g. an AWS connection for s3://).",
        ),
        "voice_id": Param(
            20298,
            type="integer",
            minimum=1,
            title="Voice",
            description="A Camb.ai voice ID (GET /list-voices).",
        ),
        "language": Param(
            "en-us",
            type="string",
            title="Language",
            description="A BCP-47 tag such as en-us or fr-fr.",
        ),
        "output_format": Param(
            "flac",
            type="string",
            enum=["flac", "wav", "mp3"],
            title="Audio format",
        ),
    }


with DAG(
    dag_id="example_camb_text_to_speech",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
    params=_params(),
) as dag:
    # [START howto_operator_camb_text_to_speech]
    @task
    def read_chapters(params: dict[str, Any] | None = None) -> dict[str, str]:
        # Any scheme ObjectStoragePath knows: file://, s3://, gs:// ...
        source = ObjectStoragePath((params or {})["source"])
        chapters = {path.stem: path.read_text(encoding="utf-8") for path in source.glob("*.txt")}
        if not chapters:
            raise AirflowFailException(f"No *.txt chapter files in {source}.")
        # {"chapter-01": "It was ...", "chapter-02": "..."}: one audio file per entry, in order.
        return dict(sorted(chapters.items()))

    synthesise = CambTextToSpeechOperator(
        task_id="synthesise",
        texts=read_chapters(),
        voice_id="{{ params.voice_id }}",
        language="{{ params.language }}",
        output_format="{{ params.output_format }}",
        destination="{{ params.destination }}",
        # A null Param renders as "None" without native rendering; "" means "no connection".
        destination_conn_id="{{ params.destination_conn_id or '' }}",
        filename_template="{name}.{ext}",  # the default: chapter-01.flac, chapter-02.flac ...
        overwrite=False,  # a re-run synthesises only the files that are missing
        max_concurrency=4,  # segments in flight at once, across all chapters (the default)
        max_characters=200_000,  # fail before any request if the chapters add up to more
    )
    # return_value: {"chapter-01": {"uri": ..., "bytes": ..., "duration_seconds": ...,
    #                "segments": ..., "characters": ..., "credits": ...}, ...}
    # [END howto_operator_camb_text_to_speech]


with DAG(
    dag_id="example_camb_text_to_speech_mapped",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=MAPPED_DOC_MD,
    params=_params(),
) as mapped_dag:
    # [START howto_operator_camb_text_to_speech_mapped]
    @task
    def read_chapters_one_by_one(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        source = ObjectStoragePath((params or {})["source"])
        paths = sorted(source.glob("*.txt"), key=lambda path: path.name)
        if not paths:
            raise AirflowFailException(f"No *.txt chapter files in {source}.")
        # [{"chapter-01": "..."}, {"chapter-02": "..."}]: one mapped task instance per entry.
        return [{path.stem: path.read_text(encoding="utf-8")} for path in paths]

    CambTextToSpeechOperator.partial(
        task_id="synthesise_chapter",
        voice_id="{{ params.voice_id }}",
        language="{{ params.language }}",
        output_format="{{ params.output_format }}",
        destination="{{ params.destination }}",
        destination_conn_id="{{ params.destination_conn_id or '' }}",
    ).expand(texts=read_chapters_one_by_one())
    # [END howto_operator_camb_text_to_speech_mapped]
