from __future__ import annotations

import json

import pytest

from tests.camb_api_fakes import BASE_URL

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def camb_connection(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A ``camb_default`` connection pointing at a fake host that requests_mock answers."""
    connection: dict[str, object] = {
        "conn_type": "camb",
        "host": BASE_URL,
        "password": API_KEY,
        "extra": {"max_retries": 3, "timeout": 7},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(connection))
    return connection
