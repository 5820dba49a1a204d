"""System tests: a real Airflow deployment (API server, scheduler, DAG processor, triggerer).

Select them with ``-m system``, leave them out with ``-m "not system"``. The deployment starts
once per module, talks to one :class:`CambEmulator` in this pytest process, and is stopped (every
process by PID, SIGTERM then SIGKILL) however the tests end. When a test fails, the tail of every
process's output is added to its report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from airflow_provider_camb.testing.emulator import CambEmulator
from tests.system.deployment import EXAMPLE_DAGS, AirflowDeployment

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator
    from pathlib import Path

#: Every DAG the deployment must have parsed before a test starts.
DAG_IDS = (
    "example_camb_tts_sensor",
    "example_camb_tts_to_storage",
    "probe_camb_many_sensors",
    "probe_camb_one_sensor",
    "probe_timedelta",
)


@dataclass(frozen=True)
class DeploymentLayout:
    """The DAG files a module's deployment runs, the DAG IDs it waits for, and extra environment."""

    example_dags: tuple[str, ...]
    dag_ids: tuple[str, ...]
    probe_dags: bool = True
    env: dict[str, str] = field(default_factory=dict)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "system: starts a real Airflow deployment (separate processes on 127.0.0.1); slow"
    )


#: ``pending_polls`` no test reaches: the task stays PENDING until :meth:`SystemEmulator.release`.
NEVER = 10**9


class SystemEmulator(CambEmulator):
    """The emulator plus a switch the system tests need: end a wait when the test says so."""

    def release(self, task_ids: Iterable[str]) -> None:
        """Let pending tasks answer SUCCESS from their next status poll on.

        Tasks seeded with an unreachable ``pending_polls`` stay pending for as long as a test
        needs, whatever the number of polls; this ends the wait.
        """
        self.finish_tasks(task_ids)


@pytest.fixture(scope="module")
def camb() -> Iterator[SystemEmulator]:
    emulator = SystemEmulator(api_key="system-test-key")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def deployment_layout() -> DeploymentLayout:
    """What the module's deployment runs; a test module overrides this fixture to deploy others."""
    return DeploymentLayout(example_dags=EXAMPLE_DAGS, dag_ids=DAG_IDS, probe_dags=True)


@pytest.fixture(scope="module")
def deployment(
    camb: SystemEmulator, deployment_layout: DeploymentLayout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    home: Path = tmp_path_factory.mktemp("airflow-home")
    airflow = AirflowDeployment(
        home,
        {"AIRFLOW_CONN_CAMB_DEFAULT": camb.connection_uri_json(), **deployment_layout.env},
        example_dags=deployment_layout.example_dags,
        probe_dags=deployment_layout.probe_dags,
    )
    started = time.monotonic()
    try:
        try:
            airflow.start(expected_dag_ids=deployment_layout.dag_ids)
        except BaseException:
            print(f"The Airflow deployment in {home} did not start:\n{airflow.tails(80)}")
            raise
        print(
            f"\n[system] Airflow deployment up in {time.monotonic() - started:.1f} s "
            f"({', '.join(f'{k} {v} s' for k, v in airflow.startup_phases.items())}; "
            f"home {home}, API {airflow.api_url}, pids "
            + json.dumps({name: p.pid for name, p in airflow.processes.items()})
            + ")"
        )
        yield airflow
    finally:
        stopping = time.monotonic()
        airflow.stop()
        print(
            f"\n[system] Airflow deployment stopped in {time.monotonic() - stopping:.1f} s"
            + (
                f" (SIGKILLed after the grace period: {airflow.killed_at_stop})"
                if airflow.killed_at_stop
                else ""
            )
        )


@pytest.fixture
def held_tasks(camb: SystemEmulator, deployment: AirflowDeployment) -> Iterator[Callable[[int], list[str]]]:
    """``held_tasks(n)`` seeds n Camb.ai TTS tasks that stay PENDING until released.

    At teardown, even after a failure, faults are cleared, the tasks released and every DAG run
    waited for: a sensor left behind would keep polling and take the next test's faults.
    """
    held: list[str] = []

    def hold(count: int) -> list[str]:
        task_ids = camb.add_tts_tasks(count, pending_polls=NEVER)
        held.extend(task_ids)
        return task_ids

    yield hold
    camb.clear_faults()
    camb.release(held)
    deployment.wait_for(
        lambda: not deployment.active_dag_runs(),
        timeout=180,
        what=lambda: f"the test's DAG runs to finish: {deployment.active_dag_runs()}",
        interval=0.5,
    )


@pytest.fixture(autouse=True)
def _triggerer_running(request: pytest.FixtureRequest) -> None:
    if "deployment" in request.fixturenames:
        request.getfixturevalue("deployment").ensure_triggerer()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    airflow = getattr(item, "funcargs", {}).get("deployment")
    if report.failed and isinstance(airflow, AirflowDeployment):
        report.sections.append(("Airflow process output (last lines of each)", airflow.tails(60)))
    return report
