"""Camb.ai's batch task kinds: where each is created, polled and fetched. Pure: no I/O.

Every kind has the same life cycle (create -> ``task_id`` -> poll until ``SUCCESS`` -> ``run_id``
-> result), and every bulk results endpoint takes the same ``RunIDsRequestPayload`` (2 to 5
unique positive run IDs of one run type). Only the paths and the shape of a result differ.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResultKind:
    """One kind of Camb.ai batch task.

    :param name: the provider's name for it (``result_kind=`` of the operators).
    :param create_path: ``POST`` here creates a task.
    :param status_path: ``GET`` here (``{task_id}`` filled in) answers the task's status.
    :param result_path: ``GET`` here (``{run_id}`` filled in) answers one run's result.
    :param bulk_path: ``POST`` here answers 2 to 5 runs' results, keyed by run ID.
    :param url_fields: the fields of a result that hold downloadable URLs, in file-name order.
    """

    name: str
    create_path: str
    status_path: str
    result_path: str
    bulk_path: str
    url_fields: tuple[str, ...]

    def status_endpoint(self) -> str:
        return f"GET {self.status_path}"

    def bulk_endpoint(self) -> str:
        return f"POST {self.bulk_path}"


TTS = ResultKind("tts", "/tts", "/tts/{task_id}", "/tts-result/{run_id}", "/tts-results", ("output_url",))
DUBBING = ResultKind(
    "dubbing",
    "/dub",
    "/dub/{task_id}",
    "/dub-result/{run_id}",
    "/dubbing-results",
    ("audio_url", "video_url"),
)
TRANSLATION = ResultKind(
    "translation",
    "/translate",
    "/translate/{task_id}",
    "/translation-result/{run_id}",
    "/translation-results",
    (),
)
TEXT_TO_SOUND = ResultKind(
    "text_to_sound",
    "/text-to-sound",
    "/text-to-sound/{task_id}",
    "/text-to-sound-result/{run_id}",
    "/text-to-sound-results",
    ("output_url",),
)
TRANSCRIPTION = ResultKind(
    "transcription",
    "/transcribe",
    "/transcribe/{task_id}",
    "/transcription-result/{run_id}",
    "/transcription-results",
    (),
)
AUDIO_SEPARATION = ResultKind(
    "audio_separation",
    "/audio-separation",
    "/audio-separation/{task_id}",
    "/audio-separation-result/{run_id}",
    "/audio-separation-results",
    ("foreground_audio_url", "background_audio_url"),
)
STORIES = ResultKind(
    "stories",
    "/story",
    "/story/{task_id}",
    "/story-result/{run_id}",
    "/stories-results",
    ("audio_url", "dialogue_url"),
)

#: Every kind by its name.
RESULT_KINDS: dict[str, ResultKind] = {
    kind.name: kind
    for kind in (TTS, DUBBING, TRANSLATION, TEXT_TO_SOUND, TRANSCRIPTION, AUDIO_SEPARATION, STORIES)
}


def result_kind(name: object) -> ResultKind:
    """The kind called ``name`` (case and ``-`` forgiven: ``"Text-To-Sound"``).

    :raises ValueError: naming the kinds there are.
    """
    key = str(name).strip().lower().replace("-", "_") if isinstance(name, str) else ""
    if key not in RESULT_KINDS:
        raise ValueError(f"result_kind must be one of {', '.join(RESULT_KINDS)}, got {name!r}")
    return RESULT_KINDS[key]


def kind_label(name: str) -> str:
    """How log lines name a kind's tasks: ``TTS``, ``dubbing``, ``text to sound``..."""
    return "TTS" if name == "tts" else name.replace("_", " ")
