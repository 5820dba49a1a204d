"""Helpers for the emulator's own tests; the ``camb_emulator`` fixture comes from the plugin."""

from __future__ import annotations

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
