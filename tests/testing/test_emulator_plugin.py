"""The pytest plugin and the import-weight promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_camb.testing import CambEmulator


def test_the_fixture_points_airflow_conn_camb_default_at_the_emulator(camb_emulator: CambEmulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_CAMB_DEFAULT"])
    assert conn == {"conn_type": "camb", "host": camb_emulator.base_url, "password": "test-api-key"}
    assert camb_emulator.api_key == "test-api-key"


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    names = {ep.value for ep in entry_points(group="pytest11")}
    assert "airflow_provider_camb.testing.pytest_plugin" in names


def test_importing_the_emulator_and_the_plugin_never_imports_airflow() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_camb.testing.pytest_plugin\n"
        "assert 'airflow_provider_camb.testing.emulator' not in sys.modules, 'plugin import is not lazy'\n"
        "from airflow_provider_camb.testing import CambEmulator\n"
        "with CambEmulator() as emu: emu.add_tts_runs(2)\n"
        "assert 'airflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
