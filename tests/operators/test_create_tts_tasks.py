"""CambCreateTTSTasksOperator and CambHook.create_tts_task: never a billed TTS task twice.

Hook behaviour per failure mode with ``requests_mock``; the operator over real HTTP against the
emulator (a fake task instance and an in-memory Variable store for the retry logic), then real
DAG runs (``dag.test()``) with Airflow's own retries.
"""

from __future__ import annotations

import json
import pickle
import socket
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
import requests
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from airflow_provider_camb.exceptions import CambAPIError, CambAuthError, CambTaskMayExistError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators import create_tts
from airflow_provider_camb.operators._text_inputs import InvalidTextsError
from airflow_provider_camb.operators.camb import CambBulkTTSResultsOperator
from airflow_provider_camb.operators.create_tts import (
    CambCreateTTSTasksOperator,
    build_request_fields,
    ledger_key,
    parse_create_texts,
)
from airflow_provider_camb.sensors.camb import CambTTSTaskSensor
from airflow_provider_camb.utils.xcom_keys import CREATED_TASKS
from tests.camb_api_fakes import BASE_URL

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator
    from tests.airflow_support import DagRunner

TEXTS = ["The first text to speak.", "The second text to speak.", "The third text to speak."]
HOOK_TIMEOUT = 0.5
SLOW = 1.5  # longer than HOOK_TIMEOUT: the answer arrives after the hook gave up


# -- fixtures and helpers -------------------------------------------------------------------------


class FakeVariables:
    """An in-memory stand-in for ``airflow.sdk.Variable`` (outside a task runner it cannot write)."""

    def __init__(self) -> None:
        self.store: dict[str, str] = {}
        self.sets: list[str] = []

    def get(self, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        if key not in self.store:
            return default
        return json.loads(self.store[key]) if deserialize_json else self.store[key]

    def set(self, key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        self.store[key] = json.dumps(value) if serialize_json else value
        self.sets.append(key)

    def delete(self, key: str) -> None:
        self.store.pop(key, None)


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    fake = FakeVariables()
    monkeypatch.setattr(create_tts, "Variable", fake)
    return fake


def fake_ti(try_number: int = 1, map_index: int = -1) -> mock.MagicMock:
    ti = mock.MagicMock(name="ti")
    ti.dag_id, ti.run_id, ti.task_id = "dag", "manual__1", "create"
    ti.map_index = map_index
    ti.try_number = try_number
    return ti


def pushed_created(ti: mock.MagicMock) -> list[Any]:
    return [c.kwargs["value"] for c in ti.xcom_push.call_args_list if c.kwargs["key"] == CREATED_TASKS]


def set_timeout(monkeypatch: pytest.MonkeyPatch, emu: CambEmulator, seconds: float = HOOK_TIMEOUT) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps(
            {
                "conn_type": "camb",
                "host": emu.base_url,
                "password": emu.api_key,
                "extra": {"timeout": seconds, "max_retries": 2},
            }
        ),
    )


def slow_nth_create(monkeypatch: pytest.MonkeyPatch, emu: CambEmulator, nth: int) -> None:
    """Delay only the ``nth`` create (1-based) of the test by :data:`SLOW` seconds."""
    original = CambHook.create_tts_task
    calls = {"n": 0}

    def create(self: CambHook, payload: dict[str, Any]) -> str:
        calls["n"] += 1
        if calls["n"] == nth:
            emu.add_latency("create_tts", SLOW, count=1)
        return original(self, payload)

    monkeypatch.setattr(CambHook, "create_tts_task", create)


def created_texts(emu: CambEmulator, wait_for: int | None = None) -> list[str]:
    """The texts the emulator created a task for, in the order their answers were written (a slow
    answer lands after later, faster ones).

    :param wait_for: wait (a few seconds at most) until this many have been journaled: a slow
        answer is journaled only once the server has written it, after the client gave up.
    """
    deadline = time.monotonic() + 5
    while wait_for is not None and len(emu.requests("create_tts")) < wait_for and time.monotonic() < deadline:
        time.sleep(0.05)
    return [entry.json["text"] for entry in emu.requests("create_tts") if entry.status == 200]


def operator(**kwargs: Any) -> CambCreateTTSTasksOperator:
    kwargs.setdefault("texts", TEXTS)
    kwargs.setdefault("voice_id", 20298)
    kwargs.setdefault("language", 1)
    return CambCreateTTSTasksOperator(task_id="create", **kwargs)


# -- pure input handling --------------------------------------------------------------------------


def test_a_list_of_texts_is_named_by_position():
    assert parse_create_texts(["abc", "def"]) == {"0": "abc", "1": "def"}


def test_a_mapping_a_rendered_list_and_a_lone_text_are_accepted():
    assert parse_create_texts({"intro": "Hello there"}) == {"intro": "Hello there"}
    assert parse_create_texts("['abc', 'def']") == {"0": "abc", "1": "def"}
    assert parse_create_texts('{"a": "Hello"}') == {"a": "Hello"}
    assert parse_create_texts("Just one text.") == {"0": "Just one text."}


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "texts is empty"),
        (None, "texts is empty"),
        (["ok text", "hi"], "text '1' has 2 characters; Camb.ai needs at least 3"),
        (["ok text", "   "], "text '1' is empty or only whitespace"),
        ([42], "text '0' must be a string"),
        (7, "texts must be a list of texts or a mapping"),
    ],
)
def test_bad_texts_are_named(texts, message):
    with pytest.raises(InvalidTextsError, match=message):
        parse_create_texts(texts)


def test_request_fields_accept_rendered_numbers_and_drop_missing_optionals():
    fields, problems = build_request_fields(
        voice_id="20298", language="1", gender="2", age=None, folder_id=""
    )
    assert problems == []
    assert fields == {"voice_id": 20298, "language": 1, "gender": 2}


def test_a_bcp47_language_is_refused_with_a_hint():
    _, problems = build_request_fields(voice_id=1, language="en-us")
    assert problems == [
        "language must be a positive whole number, Camb.ai's language ID (1 is en-us), got 'en-us'; "
        "POST /tts takes the API's numeric language IDs (GET /source-languages lists them), BCP-47 tags "
        "are for POST /tts-stream (CambTextToSpeechOperator)"
    ]


def test_the_ledger_key_names_the_task_instance_and_stays_within_250_characters():
    assert ledger_key("d", "r", "t", -1) == "camb_created_tasks/d/r/t"
    assert ledger_key("d", "r", "t", 3) == "camb_created_tasks/d/r/t/3"
    long_key = ledger_key("d" * 200, "r" * 200, "t", 0)
    assert len(long_key) <= 250
    assert long_key != ledger_key("d" * 200, "r" * 200, "t", 1)


def test_a_max_segment_chars_too_small_for_the_splitter_is_refused_at_parse_time():
    with pytest.raises(ValueError, match="max_segment_chars must be a whole number >= 12"):
        operator(max_segment_chars=5)


# -- CambHook.create_tts_task, failure by failure (requests_mock) ----------------------------------


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> CambHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps({"conn_type": "camb", "host": BASE_URL, "password": "k-123", "extra": {"max_retries": 3}}),
    )
    return CambHook()


PAYLOAD = {"text": "Hello from the hook test.", "voice_id": 1, "language": 1}
TTS_URL = f"{BASE_URL}/tts"


def refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, TTS_URL, reason))  # type: ignore[arg-type]


def test_the_task_id_comes_back(hook, requests_mock):
    requests_mock.post(TTS_URL, json={"task_id": "abc-1"})
    assert hook.create_tts_task(PAYLOAD) == "abc-1"
    assert requests_mock.last_request.json() == PAYLOAD


@pytest.mark.parametrize("failure", [refused, requests.exceptions.ConnectTimeout], ids=["refused", "connect"])
def test_a_connection_that_never_opened_is_retried(hook, requests_mock, failure):
    requests_mock.post(TTS_URL, [{"exc": failure()}, {"exc": failure()}, {"json": {"task_id": "abc-2"}}])
    assert hook.create_tts_task(PAYLOAD) == "abc-2"
    assert requests_mock.call_count == 3


def test_a_host_that_never_accepts_fails_as_unreachable_not_as_may_exist(hook, requests_mock):
    requests_mock.post(TTS_URL, exc=refused())
    with pytest.raises(CambAPIError) as caught:
        hook.create_tts_task(PAYLOAD)
    assert not isinstance(caught.value, CambTaskMayExistError)
    assert "could not reach" in str(caught.value)
    assert requests_mock.call_count == 4  # 1 + max_retries


def test_a_refused_connection_to_a_real_closed_port_is_retried(monkeypatch, _instant_retries):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps(
            {
                "conn_type": "camb",
                "host": f"http://127.0.0.1:{port}/apis",
                "password": "k",
                "extra": {"max_retries": 2},
            }
        ),
    )
    with pytest.raises(CambAPIError, match="could not reach") as caught:
        CambHook().create_tts_task(PAYLOAD)
    assert not isinstance(caught.value, CambTaskMayExistError)
    assert len(_instant_retries) == 2


def test_429_is_retried_after_its_retry_after(hook, requests_mock, _instant_retries):
    requests_mock.post(
        TTS_URL,
        [{"status_code": 429, "headers": {"Retry-After": "7"}, "json": {}}, {"json": {"task_id": "abc-3"}}],
    )
    assert hook.create_tts_task(PAYLOAD) == "abc-3"
    assert _instant_retries == [7.0]


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (requests.exceptions.ReadTimeout, "no answer within 60 s after the request was sent (ReadTimeout)"),
        (
            lambda: requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104))),
            "the connection broke after the request was sent (ConnectionError)",
        ),
        (requests.exceptions.ChunkedEncodingError, "the connection broke after the request was sent"),
    ],
    ids=["read-timeout", "reset", "cut-answer"],
)
def test_a_lost_answer_is_never_sent_again_and_says_the_task_may_exist(hook, requests_mock, failure, said):
    requests_mock.post(TTS_URL, exc=failure())
    with pytest.raises(CambTaskMayExistError) as caught:
        hook.create_tts_task(PAYLOAD)
    assert requests_mock.call_count == 1
    assert said in str(caught.value)
    assert "The TTS task for text 'Hello from the hook test.' MAY exist (and be billed)" in str(caught.value)
    assert caught.value.status_code is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_a_server_error_after_the_body_was_sent_is_not_retried(hook, requests_mock, status):
    requests_mock.post(TTS_URL, status_code=status, json={"detail": "upstream trouble"})
    with pytest.raises(CambTaskMayExistError, match="upstream trouble") as caught:
        hook.create_tts_task(PAYLOAD)
    assert caught.value.status_code == status
    assert requests_mock.call_count == 1


def test_a_2xx_without_a_task_id_may_have_created_one(hook, requests_mock):
    requests_mock.post(TTS_URL, json={"ok": True})
    with pytest.raises(CambTaskMayExistError, match="the answer carried no task_id"):
        hook.create_tts_task(PAYLOAD)


def test_a_rejection_is_a_plain_error_no_task_was_made(hook, requests_mock):
    requests_mock.post(
        TTS_URL,
        status_code=422,
        json={"detail": [{"loc": ["body", "language"], "msg": "Input should be a valid integer"}]},
    )
    with pytest.raises(CambAPIError, match="language: Input should be a valid integer") as caught:
        hook.create_tts_task(PAYLOAD)
    assert not isinstance(caught.value, CambTaskMayExistError)
    assert requests_mock.call_count == 1


def test_a_rejected_key_is_an_auth_error(hook, requests_mock):
    requests_mock.post(TTS_URL, status_code=401, json={"detail": "Invalid API key"})
    with pytest.raises(CambAuthError):
        hook.create_tts_task(PAYLOAD)


def test_the_may_exist_error_survives_pickling_unchanged():
    error = CambTaskMayExistError("lost", status_code=None, endpoint="POST /tts", text="Hello there")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CambTaskMayExistError
    assert str(copy) == str(error)
    assert copy.text == "Hello there"


# -- the operator against the emulator ------------------------------------------------------------


def test_every_text_gets_a_task_and_the_ids_come_back_in_input_order(camb_emulator, variables):
    ti = fake_ti()
    op = operator(
        texts={"intro": "Welcome to the show.", "outro": "Thanks for listening."},
        language="1",
        gender=2,
        age=30,
        project_name="Podcast",
        folder_id=7,
    )

    task_ids = op.execute({"ti": ti})

    bodies = [entry.json for entry in camb_emulator.requests("create_tts")]
    assert bodies == [
        {
            "text": text,
            "voice_id": 20298,
            "language": 1,
            "gender": 2,
            "age": 30,
            "project_name": "Podcast",
            "folder_id": 7,
        }
        for text in ("Welcome to the show.", "Thanks for listening.")
    ]
    assert len(task_ids) == 2
    assert pushed_created(ti) == [{"intro": [task_ids[0]], "outro": [task_ids[1]]}]
    assert variables.store == {}  # the record is dropped once the task succeeds
    assert variables.sets  # ... but was written while creating


def test_a_long_text_becomes_one_task_per_segment_in_order(camb_emulator, variables):
    long_text = " ".join(f"Sentence number {n} is here." for n in range(12))
    ti = fake_ti()

    task_ids = operator(texts=[long_text, "Short one."], max_segment_chars=100).execute({"ti": ti})

    sent = [entry.json["text"] for entry in camb_emulator.requests("create_tts")]
    assert all(len(text) <= 100 for text in sent)
    assert " ".join(sent[:-1]) == long_text
    assert sent[-1] == "Short one."
    created = pushed_created(ti)[-1]
    assert len(created["0"]) == len(sent) - 1 > 1
    assert task_ids == [*created["0"], *created["1"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texts": []}, "texts is empty"),
        ({"texts": ["Fine text.", "no"]}, "text '1' has 2 characters"),
        ({"voice_id": "Ava"}, "voice_id must be a positive whole number"),
        ({"voice_id": True}, "voice_id must be a positive whole number"),
        ({"language": "en-us"}, "language must be a positive whole number"),
        ({"language": 0}, "language must be a positive whole number"),
        ({"gender": 3}, "gender must be 0"),
        ({"project_name": "ab"}, "project_name must be a text of 3 to 255 characters, got 2 characters"),
    ],
)
def test_bad_input_fails_before_any_request(camb_emulator, variables, kwargs, message):
    with pytest.raises(AirflowFailException, match=message) as caught:
        operator(**kwargs).execute({"ti": fake_ti()})
    assert str(caught.value).startswith("Cannot create Camb.ai TTS tasks: ")
    assert camb_emulator.journal == []
    assert variables.sets == []


def test_a_rejected_text_fails_for_good_and_keeps_what_was_created(camb_emulator, variables):
    camb_emulator.fail_next("create_tts", 1, status=422, body={"detail": "voice not available"})
    ti = fake_ti()
    with pytest.raises(AirflowFailException, match=r"Camb\.ai rejected text '0'.*voice not available"):
        operator().execute({"ti": ti})
    assert pushed_created(ti) == [{}]
    assert json.loads(next(iter(variables.store.values())))["texts"] == {}


def test_a_rate_limit_is_waited_out_and_creates_once(camb_emulator, variables, _instant_retries):
    camb_emulator.fail_next("create_tts", 1, status=429, retry_after=3)
    assert len(operator(texts=["Only this one."]).execute({"ti": fake_ti()})) == 1
    assert created_texts(camb_emulator) == ["Only this one."]
    assert _instant_retries == [3.0]


def test_a_server_error_fails_the_try_with_may_exist_and_is_sent_once(camb_emulator, variables):
    camb_emulator.fail_next("create_tts", 1, status=503)
    ti = fake_ti()
    with pytest.raises(CambTaskMayExistError, match="text '0': Service Unavailable"):
        operator().execute({"ti": ti})
    assert len(camb_emulator.requests("create_tts")) == 1
    assert pushed_created(ti) == [{"0": [None]}]


def test_a_timeout_after_sending_fails_the_try_keeps_the_first_id_and_the_retry_creates_only_the_rest(
    monkeypatch, camb_emulator, variables
):
    set_timeout(monkeypatch, camb_emulator)
    slow_nth_create(monkeypatch, camb_emulator, nth=2)
    first = fake_ti(try_number=1)

    with pytest.raises(CambTaskMayExistError) as caught:
        operator().execute({"ti": first})

    assert str(caught.value) == (
        "Camb.ai POST /tts failed: text '1': no answer within 0.5 s after the request was sent "
        "(ReadTimeout). The TTS task for text 'The second text to speak.' MAY exist (and be billed); "
        "the request was not sent again so that the text is not created twice"
    )
    # The server did make the second task: its answer came too late.
    assert created_texts(camb_emulator, wait_for=2) == TEXTS[:2]
    (first_push,) = pushed_created(first)
    assert list(first_push) == ["0", "1"]
    assert first_push["1"] == [None]
    kept_id = first_push["0"][0]

    # The retry: Airflow has deleted the first try's XComs by now; the Variable remembers.
    second = fake_ti(try_number=2)
    with pytest.raises(AirflowFailException) as final:
        operator().execute({"ti": second})

    assert sorted(created_texts(camb_emulator, wait_for=3)) == sorted(TEXTS)  # every text exactly once
    assert pushed_created(second)[-1] == {"0": [kept_id], "1": [None], "2": [mock.ANY]}
    assert "1 create(s) of 1 text(s) were sent but never answered, so their TTS tasks may exist: '1'" in str(
        final.value
    )
    assert (
        "set recreate_uncertain=True or delete the Variable 'camb_created_tasks/dag/manual__1/create'"
        in str(final.value)
    )


def test_recreate_uncertain_sends_a_lost_create_again_on_the_retry(monkeypatch, camb_emulator, variables):
    set_timeout(monkeypatch, camb_emulator)
    slow_nth_create(monkeypatch, camb_emulator, nth=2)
    with pytest.raises(CambTaskMayExistError):
        operator(recreate_uncertain=True).execute({"ti": fake_ti(try_number=1)})

    second = fake_ti(try_number=2)
    task_ids = operator(recreate_uncertain=True).execute({"ti": second})

    assert sorted(created_texts(camb_emulator, wait_for=4)) == sorted(
        [TEXTS[0], TEXTS[1], TEXTS[1], TEXTS[2]]
    )
    assert len(task_ids) == 3
    assert variables.store == {}


def test_a_first_try_ignores_a_record_left_under_its_key(camb_emulator, variables):
    key = ledger_key("dag", "manual__1", "create", -1)
    variables.store[key] = json.dumps(
        {"version": 1, "texts": {"0": {"fingerprint": "x", "task_ids": ["old"]}}}
    )
    task_ids = operator(texts=["A fresh text."]).execute({"ti": fake_ti(try_number=1)})
    assert "old" not in task_ids
    assert created_texts(camb_emulator) == ["A fresh text."]


def test_a_text_that_changed_between_tries_is_created_in_its_new_version(camb_emulator, variables):
    first = operator(texts=["Version one."]).execute({"ti": fake_ti(try_number=1)})
    variables.store[ledger_key("dag", "manual__1", "create", -1)] = json.dumps(
        {"version": 1, "texts": {"0": {"fingerprint": "of-another-text", "task_ids": first}}}
    )
    again = operator(texts=["Version two."]).execute({"ti": fake_ti(try_number=2)})
    assert again != first
    assert created_texts(camb_emulator) == ["Version one.", "Version two."]


def test_mapped_instances_keep_separate_records(camb_emulator, variables):
    operator().execute({"ti": fake_ti(map_index=0)})
    assert set(variables.sets) == {"camb_created_tasks/dag/manual__1/create/0"}


# -- real DAG runs ---------------------------------------------------------------------------------


def new_dag(request: pytest.FixtureRequest) -> DAG:
    name = request.node.name.replace("[", "__").replace("]", "").replace("-", "_")
    return DAG(dag_id=f"t_create_{name}"[:200], schedule=None)


def test_create_then_wait_then_fetch_urls_in_a_dag_run(request, dag_runner: DagRunner, camb_emulator):
    with new_dag(request) as dag:
        create = CambCreateTTSTasksOperator(task_id="create", texts=TEXTS[:2], voice_id=20298, language=1)
        wait = CambTTSTaskSensor(task_id="wait", camb_task_ids=create.output, poke_interval=0.1, timeout=30)
        CambBulkTTSResultsOperator(task_id="urls", run_ids=wait.output)

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    task_ids = dag_runner.xcom(dr, "create")
    assert len(task_ids) == 2
    assert dag_runner.xcom(dr, "create", CREATED_TASKS) == {"0": [task_ids[0]], "1": [task_ids[1]]}
    assert len(dag_runner.xcom(dr, "urls")) == 2
    assert _variable(ledger_key(dag.dag_id, dr.run_id, "create", -1)) is None


def test_airflow_retries_create_only_what_was_never_sent(request, monkeypatch, dag_runner, camb_emulator):
    set_timeout(monkeypatch, camb_emulator)
    slow_nth_create(monkeypatch, camb_emulator, nth=2)
    with new_dag(request) as dag:
        CambCreateTTSTasksOperator(
            task_id="create", texts=TEXTS, voice_id=20298, language=1, retries=1, retry_delay=timedelta(0)
        )

    dr = dag_runner.run(dag)

    # Try 1 failed on the lost answer of text 1; try 2 created text 2 only and failed for good
    # on text 1, which may exist.
    assert dr.state == "failed"
    assert dag_runner.task_states(dr) == {"create": "failed"}
    assert sorted(created_texts(camb_emulator, wait_for=3)) == sorted(TEXTS)  # none twice
    created = dag_runner.xcom(dr, "create", CREATED_TASKS)
    assert list(created) == ["0", "1", "2"]
    assert created["1"] == [None]
    assert all(isinstance(ids[0], str) for ids in (created["0"], created["2"]))
    record = _variable(ledger_key(dag.dag_id, dr.run_id, "create", -1))
    assert record["texts"]["0"]["task_ids"] == created["0"]


def test_airflow_retries_with_recreate_uncertain_end_in_success(
    request, monkeypatch, dag_runner, camb_emulator
):
    set_timeout(monkeypatch, camb_emulator)
    slow_nth_create(monkeypatch, camb_emulator, nth=2)
    with new_dag(request) as dag:
        CambCreateTTSTasksOperator(
            task_id="create",
            texts=TEXTS,
            voice_id=20298,
            language=1,
            recreate_uncertain=True,
            retries=1,
            retry_delay=timedelta(0),
        )

    dr = dag_runner.run(dag)

    assert dr.state == "success"
    assert sorted(created_texts(camb_emulator, wait_for=4)) == sorted(
        [TEXTS[0], TEXTS[1], TEXTS[1], TEXTS[2]]
    )
    assert len(dag_runner.xcom(dr, "create")) == 3
    assert _variable(ledger_key(dag.dag_id, dr.run_id, "create", -1)) is None


def _variable(key: str) -> Any:
    from airflow.models.variable import Variable

    value = Variable.get(key, default_var=None)
    return None if value is None else json.loads(value)


def test_a_record_that_is_not_json_fails_the_retry_instead_of_creating_again(camb_emulator, variables):
    variables.store[ledger_key("dag", "manual__1", "create", -1)] = "edited by hand"
    with pytest.raises(AirflowFailException, match="does not hold the tasks an earlier try created"):
        operator().execute({"ti": fake_ti(try_number=2)})
    assert camb_emulator.journal == []
