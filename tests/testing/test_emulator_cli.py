"""The ``camb-emulator`` command, run as a real subprocess and stopped with a signal."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys

import pytest
import requests

from tests.testing.conftest import start_cli

_start = start_cli


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_cli_serves_seeded_tasks_and_stops_cleanly_on_a_signal(signum: int) -> None:
    proc, lines = _start("--api-key", "cli-key", "--seed-demo", "2", "--pending-polls", "1")
    try:
        base_url = lines[0].rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/apis")
        export = next(line for line in lines if line.startswith("export AIRFLOW_CONN_CAMB_DEFAULT="))
        conn = json.loads(shlex.split(export.split("=", 1)[1])[0])
        assert conn == {"conn_type": "camb", "host": base_url, "password": "cli-key"}
        seeded = [line.split() for line in lines if " -> " in line]
        assert len(seeded) == 2
        task_id, _, run_id = seeded[0]
        headers = {"x-api-key": "cli-key"}
        first = requests.get(f"{base_url}/tts/{task_id}", headers=headers, timeout=10).json()
        second = requests.get(f"{base_url}/tts/{task_id}", headers=headers, timeout=10).json()
        assert (first["status"], second["status"], second["run_id"]) == ("PENDING", "SUCCESS", int(run_id))
    finally:
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_the_cli_applies_faults_given_on_the_command_line() -> None:
    proc, lines = _start("--fail", "list_voices:429:1:7", "--bulk-value-shape", "object")
    try:
        base_url = lines[0].rsplit(" ", 1)[-1]
        headers = {"x-api-key": "test-api-key"}
        response = requests.get(f"{base_url}/list-voices", headers=headers, timeout=10)
        assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
        assert requests.get(f"{base_url}/list-voices", headers=headers, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_the_cli_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_camb.testing", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
