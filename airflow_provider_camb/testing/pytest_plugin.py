"""pytest plugin (registered through the ``pytest11`` entry point): the ``camb_emulator`` fixture.

Kept cheap to import: pytest loads it in every session of every project that installs the
provider, so the emulator itself is imported only when a test asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_camb.testing.emulator import CambEmulator

#: The API key the fixture's emulator expects.
FIXTURE_API_KEY = "test-api-key"


@pytest.fixture
def camb_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[CambEmulator]:
    """A running :class:`~airflow_provider_camb.testing.CambEmulator`, one per test.

    ``AIRFLOW_CONN_CAMB_DEFAULT`` points at it for the duration of the test, so hooks and
    operators using ``camb_default`` talk to the emulator.  Its API key is ``test-api-key``.
    """
    from airflow_provider_camb.testing.emulator import CambEmulator

    with CambEmulator(api_key=FIXTURE_API_KEY) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", emulator.connection_uri_json())
        yield emulator
