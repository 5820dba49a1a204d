"""Helpers for the emulator's own tests; the ``camb_emulator`` fixture comes from the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import requests

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_camb.testing import CambEmulator


class Api:
    """A keep-alive ``requests`` session that sends the emulator's key and prefixes its base URL."""

    def __init__(self, emu: CambEmulator) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.session.headers["x-api-key"] = emu.api_key

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.get(self.emu.base_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.post(self.emu.base_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def api(camb_emulator: CambEmulator) -> Iterator[Api]:
    client = Api(camb_emulator)
    yield client
    client.session.close()


def start_cli(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``camb-emulator --port 0 <args>`` as a subprocess, and the lines it printed up to
    "Press Ctrl-C"; the caller stops it by PID (a signal), also on failure."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_camb.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    return proc, lines
