"""CambCreateTTSTasksOperator: texts in, Camb.ai TTS task IDs out (legacy ``POST /tts``), never twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_camb.exceptions import (
    CambAPIError,
    CambAuthError,
    CambConnectionConfigError,
    CambTaskMayExistError,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators._text_inputs import InvalidTextsError, parse_texts, preview
from airflow_provider_camb.speech.segments import MAX_SEGMENT_CHARS, MIN_SEGMENT_CHARS, split_text
from airflow_provider_camb.utils.rendered_values import (
    is_missing,
    materialise,
    parse_rendered_literal,
    whole_number,
)
from airflow_provider_camb.utils.xcom_keys import CREATED_TASKS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

#: ``gender`` values ``POST /tts`` knows: 0 not known, 1 male, 2 female, 9 not applicable.
GENDERS = frozenset({0, 1, 2, 9})
#: Where the tasks created so far are recorded, so that a retry of the task instance never creates
#: them again: an Airflow Variable ``camb_created_tasks/<dag_id>/<run_id>/<task_id>[/<map_index>]``.
LEDGER_PREFIX = "camb_created_tasks/"
# Airflow's Variable keys are at most 250 characters (``ID_LEN``).
_MAX_VARIABLE_KEY = 250
_LEDGER_VERSION = 1


# -- inputs (pure: no Airflow, no I/O) ----------------------------------------------------------


def parse_create_texts(texts: object) -> dict[str, str]:
    """``{name: text}`` from a list of texts (named ``"0"``, ``"1"``, ...), a mapping, a list of
    mappings (a mapped upstream), the string a template renders one of those to, or one text.

    :raises InvalidTextsError: naming every problem.
    """
    if isinstance(texts, str):
        texts = _parse_rendered(texts)
    if texts is None:
        raise InvalidTextsError("texts is empty: give a list of texts or {name: text}")
    if isinstance(texts, Mapping):
        return parse_texts(texts)
    if isinstance(texts, Iterable) and not isinstance(texts, bytes):
        items = materialise(texts)
        if not items:
            raise InvalidTextsError("texts is empty: give a list of texts or {name: text}")
        if all(isinstance(item, Mapping) for item in items):
            return parse_texts(items)
        return parse_texts({str(index): item for index, item in enumerate(items)})
    raise InvalidTextsError(
        f"texts must be a list of texts or a mapping {{name: text}}, got {type(texts).__name__}"
    )


def _parse_rendered(text: str) -> object:
    """The list or mapping a template rendered to text, or the text itself (one text)."""
    stripped = text.strip()
    if (stripped.startswith("[") and stripped.endswith("]")) or (
        stripped.startswith("{") and stripped.endswith("}")
    ):
        value = parse_rendered_literal(stripped)
        if isinstance(value, (list, tuple, Mapping)):
            return value
    return [text]


def build_request_fields(
    *,
    voice_id: object,
    language: object,
    gender: object = None,
    age: object = None,
    project_name: object = None,
    project_description: object = None,
    folder_id: object = None,
) -> tuple[dict[str, Any], list[str]]:
    """The ``POST /tts`` body without ``text``, and every problem with the arguments."""
    problems: list[str] = []
    fields: dict[str, Any] = {}
    voice = whole_number(voice_id)
    if voice is None or voice < 1:
        problems.append(f"voice_id must be a positive whole number (a Camb.ai voice ID), got {voice_id!r}")
    fields["voice_id"] = voice
    lang = whole_number(language)
    if lang is None or lang < 1:
        hint = ""
        if isinstance(language, str) and language.strip():
            hint = (
                "; POST /tts takes the API's numeric language IDs (GET /source-languages lists them), "
                "BCP-47 tags are for POST /tts-stream (CambTextToSpeechOperator)"
            )
        problems.append(
            f"language must be a positive whole number, Camb.ai's language ID (1 is en-us), "
            f"got {language!r}{hint}"
        )
    fields["language"] = lang
    if not is_missing(gender):
        number = whole_number(gender)
        if number not in GENDERS:
            problems.append(
                f"gender must be 0 (not known), 1 (male), 2 (female) or 9 (not applicable), got {gender!r}"
            )
        fields["gender"] = number
    for name, value in (("age", age), ("folder_id", folder_id)):
        if is_missing(value):
            continue
        number = whole_number(value)
        if number is None or number < 1:
            problems.append(f"{name} must be a positive whole number, got {value!r}")
        fields[name] = number
    for name, value, longest in (
        ("project_name", project_name, 255),
        ("project_description", project_description, 5000),
    ):
        if is_missing(value):
            continue
        if not isinstance(value, str) or not 3 <= len(value.strip()) <= longest:
            shown = f"{len(value.strip())} characters" if isinstance(value, str) else repr(value)
            problems.append(f"{name} must be a text of 3 to {longest} characters, got {shown}")
        else:
            fields[name] = value.strip()
    return fields, problems


def ledger_key(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The Variable that records the tasks one task instance created (hashed if Airflow's 250
    characters are not enough)."""
    parts = [dag_id, run_id, task_id]
    if map_index is not None and map_index >= 0:
        parts.append(str(map_index))
    key = LEDGER_PREFIX + "/".join(parts)
    if len(key) <= _MAX_VARIABLE_KEY:
        return key
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    head = f"{LEDGER_PREFIX}{dag_id[:80]}/"
    return f"{head}{digest}"


def fingerprint(fields: Mapping[str, Any], segments: list[str]) -> str:
    """What a text's tasks depend on: a retry reuses them only for the very same request."""
    body = json.dumps({"fields": dict(fields), "segments": segments}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class _Text:
    name: str
    segments: list[str]
    fingerprint: str
    #: One entry per segment sent so far: its task ID, or ``None`` when the create was sent but
    #: its answer never arrived (the task may exist). Segments go in order, so it is a prefix.
    task_ids: list[str | None]


# -- the operator ---------------------------------------------------------------------------------


class CambCreateTTSTasksOperator(BaseOperator):
    """Create one Camb.ai TTS task per text with the legacy ``POST /tts``, and never one twice.

    Each text becomes one task (a long one one task per segment, see ``max_segment_chars``);
    the task IDs go to XCom for :class:`~airflow_provider_camb.sensors.camb.CambTTSTaskSensor`.
    Creates are sent one after another, in input order.

    No double billing: the hook resends a create only when the API certainly did not take it
    (the connection could not be opened, or HTTP 429). Once a create was sent and its answer is
    lost (read timeout, reset, 5xx), the task may exist: it fails with
    :class:`~airflow_provider_camb.exceptions.CambTaskMayExistError` and that text is never sent
    again by this task instance. Every create is recorded in an Airflow Variable (before it is
    sent, and again with its task ID), because Airflow deletes a task instance's XComs when a
    new try starts: a retry (``retries``, or clearing a failed task) creates only what was never
    sent. The Variable is deleted when the task succeeds.

    XCom ``return_value``: every task ID, in input order (the segments of a text in order): a
    flat list, ready for ``CambTTSTaskSensor(camb_task_ids=...)``. XCom ``camb_created_tasks``:
    ``{name: [task_id, ...]}`` (always a list, one ID per segment), pushed on success and before
    the task fails; ``null`` marks a create whose answer was lost.

    Bad input fails with ``AirflowFailException`` before any request.

    :param texts: a list of texts (named ``"0"``, ``"1"``, ...) or ``{name: text}``; each at
        least 3 characters. (templated)
    :param voice_id: the Camb.ai voice (``GET /list-voices``). (templated)
    :param language: the API's integer language ID (``GET /source-languages``; 1 is en-us).
        (templated)
    :param gender: 0 (not known), 1 (male), 2 (female) or 9 (not applicable). (templated)
    :param age: the speaker's age. (templated)
    :param project_name: 3 to 255 characters. (templated)
    :param project_description: 3 to 5,000 characters. (templated)
    :param folder_id: the Camb.ai folder to put the tasks in. (templated)
    :param max_segment_chars: a longer text is split (at paragraphs, sentences, clauses, words)
        into segments of at most this many characters, one task each: the legacy endpoint
        documents no limit but times out on long texts.
    :param recreate_uncertain: on a retry, send again the creates whose answer was lost. They may
        exist already, so this can bill a text twice; default ``False``: such texts fail the task
        (with ``AirflowFailException``) once everything else is created.
    :param camb_conn_id: the Camb.ai connection.
    """

    template_fields: Sequence[str] = (
        "texts",
        "voice_id",
        "language",
        "gender",
        "age",
        "project_name",
        "project_description",
        "folder_id",
    )
    ui_color = "#fdf2e3"

    def __init__(
        self,
        *,
        texts: Any,
        voice_id: Any,
        language: Any = 1,
        gender: Any = None,
        age: Any = None,
        project_name: str | None = None,
        project_description: str | None = None,
        folder_id: Any = None,
        max_segment_chars: int = MAX_SEGMENT_CHARS,
        recreate_uncertain: bool = False,
        camb_conn_id: str = CambHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(max_segment_chars, bool)
            or not isinstance(max_segment_chars, int)
            or max_segment_chars < 4 * MIN_SEGMENT_CHARS
        ):
            raise ValueError(
                f"max_segment_chars must be a whole number >= {4 * MIN_SEGMENT_CHARS}, "
                f"got {max_segment_chars!r}"
            )
        self.texts = texts
        self.voice_id = voice_id
        self.language = language
        self.gender = gender
        self.age = age
        self.project_name = project_name
        self.project_description = project_description
        self.folder_id = folder_id
        self.max_segment_chars = max_segment_chars
        self.recreate_uncertain = recreate_uncertain
        self.camb_conn_id = camb_conn_id

    @cached_property
    def hook(self) -> CambHook:
        """The Camb.ai hook, built on first use (never while the DAG file is parsed)."""
        return CambHook(camb_conn_id=self.camb_conn_id)

    def execute(self, context: Context) -> list[str]:
        fields, plans = self._checked_inputs()
        ti = context["ti"]
        key = ledger_key(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", None))
        ledger = self._previous_ledger(key, _try_number(ti))
        texts = [self._resume(name, segments, fields, ledger) for name, segments in plans.items()]
        try:
            self.hook.settings  # noqa: B018 - a connection without a key fails before any write
        except CambConnectionConfigError as err:
            raise AirflowFailException(str(err)) from err
        try:
            self._create_all(texts, fields, ledger, key, context)
        finally:
            self.hook.close()

        uncertain = {text.name: text for text in texts if None in text.task_ids}
        self._push_created(context, texts)
        if uncertain:
            # Kept: a later clear of this task must not send these again either.
            raise AirflowFailException(
                f"{sum(t.task_ids.count(None) for t in uncertain.values())} create(s) of "
                f"{len(uncertain)} text(s) were sent but never answered, so their TTS tasks may exist: "
                + "; ".join(f"{name!r} ({preview(' '.join(t.segments))})" for name, t in uncertain.items())
                + f". They are not sent again. Every other text has its task (XCom {CREATED_TASKS!r}). "
                f"To create them anyway (a text may then be billed twice), set recreate_uncertain=True "
                f"or delete the Variable {key!r}, then clear this task."
            )
        self._forget(key)
        task_ids = [task_id for text in texts for task_id in text.task_ids if task_id is not None]
        self.log.info("Created %d Camb.ai TTS task(s) for %d text(s).", len(task_ids), len(texts))
        return task_ids

    # -- inputs -----------------------------------------------------------------------------

    def _checked_inputs(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The request fields and every text's segments; every bad argument named at once."""
        problems: list[str] = []
        plans: dict[str, list[str]] = {}
        try:
            texts = parse_create_texts(self.texts)
        except InvalidTextsError as err:
            problems.append(str(err))
        else:
            for name, text in texts.items():
                try:
                    plans[name] = split_text(text, max_chars=self.max_segment_chars)
                except ValueError as err:
                    problems.append(f"text {name!r}: {err}")
        fields, field_problems = build_request_fields(
            voice_id=self.voice_id,
            language=self.language,
            gender=self.gender,
            age=self.age,
            project_name=self.project_name,
            project_description=self.project_description,
            folder_id=self.folder_id,
        )
        problems.extend(field_problems)
        if problems:
            raise AirflowFailException("Cannot create Camb.ai TTS tasks: " + "; ".join(problems))
        return fields, plans

    # -- the ledger ---------------------------------------------------------------------------

    def _previous_ledger(self, key: str, try_number: int) -> dict[str, Any]:
        """What earlier tries of this task instance created (nothing on its first try)."""
        if try_number <= 1:
            # A first try has no earlier one: a Variable left under this key is someone else's.
            return {}
        try:
            stored = Variable.get(key, default=None, deserialize_json=True)
        except ValueError:  # not JSON: someone edited it
            stored = False
        if stored is None:
            return {}
        if not isinstance(stored, dict) or not isinstance(stored.get("texts"), dict):
            raise AirflowFailException(
                f"The Variable {key!r} does not hold the tasks an earlier try created; fix it or delete "
                f"it (texts created by that try would then be created again)."
            )
        self.log.info(
            "Try %d: %d text(s) were sent to Camb.ai by earlier tries (Variable %r).",
            try_number,
            len(stored["texts"]),
            key,
        )
        return stored

    def _resume(
        self, name: str, segments: list[str], fields: dict[str, Any], ledger: dict[str, Any]
    ) -> _Text:
        digest = fingerprint(fields, segments)
        before = ledger.get("texts", {}).get(name)
        if isinstance(before, dict) and before.get("fingerprint") == digest:
            task_ids = [
                task_id if isinstance(task_id, str) else None for task_id in before.get("task_ids", [])
            ]
            return _Text(name, segments, digest, task_ids[: len(segments)])
        if isinstance(before, dict) and before.get("task_ids"):
            self.log.warning(
                "Text %r changed since an earlier try (text, voice or settings); the task(s) %s made for "
                "the earlier version are left as they are, the new version is created.",
                name,
                before.get("task_ids"),
            )
        return _Text(name, segments, digest, [])

    def _save(self, key: str, ledger: dict[str, Any], texts: list[_Text]) -> None:
        ledger.setdefault("texts", {})
        ledger["version"] = _LEDGER_VERSION
        for text in texts:
            if text.task_ids:
                ledger["texts"][text.name] = {"fingerprint": text.fingerprint, "task_ids": text.task_ids}
            else:
                ledger["texts"].pop(text.name, None)
        Variable.set(
            key,
            ledger,
            description=(
                "Camb.ai TTS tasks created by CambCreateTTSTasksOperator, so that a retry never creates "
                "them twice; deleted when the task succeeds."
            ),
            serialize_json=True,
        )

    def _forget(self, key: str) -> None:
        try:
            Variable.delete(key)
        except Exception as err:  # the tasks exist and are in XCom: a leftover Variable is harmless
            self.log.warning("Could not delete the Variable %r (%s); it can be deleted by hand.", key, err)

    # -- creating -----------------------------------------------------------------------------

    def _create_all(
        self, texts: list[_Text], fields: dict[str, Any], ledger: dict[str, Any], key: str, context: Context
    ) -> None:
        done = sum(1 for text in texts for task_id in text.task_ids if task_id is not None)
        if done:
            self.log.info("%d task(s) created by earlier tries are kept, not created again.", done)
        for text in texts:
            total = len(text.segments)
            for index, segment in enumerate(text.segments):
                where = f"text {text.name!r}" + (f", segment {index + 1} of {total}" if total > 1 else "")
                again = index < len(text.task_ids)
                if again:
                    if text.task_ids[index] is not None or not self.recreate_uncertain:
                        continue
                    self.log.warning(
                        "%s: sending again a create whose answer was lost (it may exist).", where
                    )
                else:
                    text.task_ids.append(None)
                try:
                    # Written before sending: a try killed mid-request leaves the create marked
                    # "may exist", and no retry sends it again.
                    self._save(key, ledger, texts)
                    task_id = self.hook.create_tts_task({"text": segment, **fields})
                except CambTaskMayExistError as err:
                    self._push_created(context, texts)
                    self.log.error("%s: %s", where, err)
                    raise CambTaskMayExistError(
                        f"{where}: {err.reason}",
                        status_code=err.status_code,
                        endpoint=err.endpoint,
                        text=segment,
                    ) from err
                except CambAPIError as err:
                    # Certainly not created this time: a retry may send it (an earlier lost one
                    # being sent again stays marked "may exist").
                    if not again:
                        text.task_ids.pop()
                    self._save_quietly(key, ledger, texts)
                    self._push_created(context, texts)
                    if isinstance(err, CambAuthError) or (
                        err.status_code is not None
                        and 400 <= err.status_code < 500
                        and err.status_code != 429
                    ):
                        raise AirflowFailException(
                            f"Camb.ai rejected {where} ({preview(segment)}): {err}"
                        ) from err
                    raise
                except BaseException:
                    # Anything else (the Variable could not be written, the task was killed): the
                    # create may or may not have gone out, and stays marked "may exist".
                    self._push_created(context, texts)
                    raise
                text.task_ids[index] = task_id
                self.log.info("%s: Camb.ai TTS task %s created.", where, task_id)
                try:
                    self._save(key, ledger, texts)
                except BaseException:
                    self._push_created(context, texts)
                    self.log.error(
                        "%s: task %s was created but could not be recorded; a retry treats it as "
                        "'may exist' and does not create it again.",
                        where,
                        task_id,
                    )
                    raise

    def _save_quietly(self, key: str, ledger: dict[str, Any], texts: list[_Text]) -> None:
        try:
            self._save(key, ledger, texts)
        except Exception as err:  # it stays marked "may exist": safe, only less convenient
            self.log.warning("Could not update the Variable %r (%s).", key, err)

    def _push_created(self, context: Context, texts: list[_Text]) -> None:
        created = {text.name: list(text.task_ids) for text in texts if text.task_ids}
        try:
            context["ti"].xcom_push(key=CREATED_TASKS, value=created)
        except Exception as err:  # never hide the error being raised; the log has every task ID
            self.log.warning("Could not push XCom %r (%s): %s", CREATED_TASKS, err, created)


def _try_number(ti: Any) -> int:
    number = getattr(ti, "try_number", 1)
    return number if isinstance(number, int) and not isinstance(number, bool) else 1
