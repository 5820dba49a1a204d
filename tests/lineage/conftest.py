"""Fixtures for the lineage tests: the real OpenLineage listener writing events to a file, S3 on
moto (the transfer tests' server), DAG builders for both operators that write audio."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Reused, not copied: the transfer tests' instant download retries and their moto server.
from tests.transfers.conftest import MotoS3, download_sleeps, moto_s3, transfer_dag  # noqa: F401

#: An AWS connection of the lineage tests' own: Airflow caches one s3fs per connection ID, and
#: this directory's moto server is not the transfer tests' one when both run in one session.
LINEAGE_S3_CONN_ID = "aws_lineage_moto"

VOICE = 20298


@pytest.fixture
def s3_destination(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """``(bucket, folder URI, connection ID)`` of a fresh bucket on moto."""
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{LINEAGE_S3_CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": moto.endpoint_url},
            }
        ),
    )
    bucket = moto.new_bucket()
    return bucket, f"s3://{bucket}/tts/audio/", LINEAGE_S3_CONN_ID


@pytest.fixture
def openlineage_events(tmp_path: Path) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """The real OpenLineage provider's task listener, emitting through its file transport.

    Yields ``events(job_name)``: the events of one job (``<dag_id>.<task_id>``) read back from the
    JSON-lines file, in order.

    Airflow reads plugins once per process, so a listener enabled by configuration would stay
    on for every later test. Instead, plugins are loaded first (OpenLineage off, as in every other
    test), then a listener of our own is registered with the task runner's listener manager for
    this test only. Emission runs in a thread the task runner waits for
    (``execute_in_thread``) rather than in a fork of the pytest process and its server threads.
    """
    from airflow.providers.openlineage import conf as openlineage_conf
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    manager = get_listener_manager()  # loads the plugins while OpenLineage is off
    path = tmp_path / "openlineage" / "events.jsonl"
    path.parent.mkdir()
    env = pytest.MonkeyPatch()
    env.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(path), "append": True}),
    )
    env.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    env.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    _clear_caches(openlineage_conf)
    listener = OpenLineageListener()
    manager.add_listener(listener)

    def events(job_name: str) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [event for event in found if event.get("job", {}).get("name") == job_name]

    try:
        yield events
    finally:
        manager.pm.unregister(listener)
        env.undo()
        _clear_caches(openlineage_conf)


def _clear_caches(module: Any) -> None:
    """The provider reads each ``[openlineage]`` option once; forget what it read."""
    for value in vars(module).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


def dag_id_for(request: pytest.FixtureRequest, suffix: str = "") -> str:
    return "lineage_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16] + suffix


def tts_dag(dag_id: str, **operator_kwargs: Any) -> Any:
    """A one-task DAG around CambTextToSpeechOperator (task_id ``speak``)."""
    from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator
    from tests.airflow_support import one_task_dag

    operator_kwargs.setdefault("voice_id", VOICE)
    return one_task_dag(dag_id, CambTextToSpeechOperator, "speak", **operator_kwargs)
