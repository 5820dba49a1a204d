"""Fixtures for the operator tests: a fake-host connection for requests_mock, a fake task instance."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest

from tests.camb_api_fakes import BASE_URL

API_KEY = "sk-operator-test-0123456789"


@pytest.fixture
def camb_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """``camb_default`` pointing at a fake host that requests_mock answers (one retry at most)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps({"conn_type": "camb", "host": BASE_URL, "password": API_KEY, "extra": {"max_retries": 1}}),
    )


@pytest.fixture
def context() -> dict[str, Any]:
    """A task context whose ``ti`` records ``xcom_push`` calls."""
    return {"ti": mock.MagicMock(name="ti")}


def pushed(context: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(key, value)`` of every ``xcom_push`` made through ``context["ti"]``, in order."""
    return [(call.kwargs["key"], call.kwargs["value"]) for call in context["ti"].xcom_push.call_args_list]
