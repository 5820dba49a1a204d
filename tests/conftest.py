"""Test-wide set-up: an isolated Airflow home, no example DAGs, a migrated SQLite DB on demand.

The environment is set here, at import, because Airflow reads its configuration when first
imported; the emulator's pytest plugin (loaded earlier) never imports Airflow.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="camb-tests-airflow-home-")

os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "example_dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
# A developer's own connection must never leak into a test.
for _name in list(os.environ):
    if _name.startswith("AIRFLOW_CONN_"):
        del os.environ[_name]

import pytest  # noqa: E402

from tests.airflow_support import DagRunner  # noqa: E402


@pytest.fixture(autouse=True)
def _instant_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the hook's retry sleeps instead of sleeping, so retry tests stay fast."""
    from airflow_provider_camb.hooks.camb import CambHook

    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(CambHook, "retry_sleep", staticmethod(slept.append))
    monkeypatch.setattr(CambHook, "async_retry_sleep", staticmethod(record))
    return slept


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Everything logged so far: Airflow's structlog writes to the terminal, stdlib logging to caplog."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def read() -> str:
        out, err = capfd.readouterr()
        seen.extend([out, err])
        return "".join(seen) + caplog.text

    return read


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata DB (SQLite in the test AIRFLOW_HOME), created once per session."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture
def dag_runner(airflow_db: None) -> DagRunner:
    """Runs a DAG for real with ``dag.test()`` and reads its XComs back from the metadata DB."""
    return DagRunner()
