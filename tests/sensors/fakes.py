"""A scripted stand-in for ``CambHook.get_tts_task_status``, shared by sensor and trigger tests."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import TYPE_CHECKING

from airflow_provider_camb.exceptions import CambAPIError, CambAuthError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.hooks.task_status import CambTaskStatus

if TYPE_CHECKING:
    import pytest

Answer = CambTaskStatus | Exception


def status(task_id: str, state: str, run_id: int | None = None, **details: str) -> CambTaskStatus:
    return CambTaskStatus(task_id=task_id, status=state, run_id=run_id, **details)


def pending(task_id: str) -> CambTaskStatus:
    return status(task_id, "PENDING")


def success(task_id: str, run_id: int) -> CambTaskStatus:
    return status(task_id, "SUCCESS", run_id)


def unavailable() -> CambAPIError:
    return CambAPIError("service unavailable", status_code=503, endpoint="GET /tts/{task_id}")


def unreachable() -> CambAPIError:
    return CambAPIError("could not reach the API", status_code=None, endpoint="GET /tts/{task_id}")


def rejected_key() -> CambAuthError:
    return CambAuthError("the API key was rejected", status_code=401, endpoint="GET /tts/{task_id}")


class ScriptedStatuses:
    """Answers each task's polls from its script in order; the last answer repeats."""

    def __init__(self, scripts: dict[str, list[Answer]]) -> None:
        self.scripts = scripts
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, task_id: str) -> CambTaskStatus:
        with self._lock:
            asked_before = self.calls.count(task_id)
            self.calls.append(task_id)
        script = self.scripts[task_id]
        answer = script[min(asked_before, len(script) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def calls_per_task(self) -> Counter[str]:
        return Counter(self.calls)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> ScriptedStatuses:
        """Make every CambHook answer status calls, blocking and async, from this script."""

        async def answer(_hook: CambHook, task_id: str, kind: object = "tts") -> CambTaskStatus:
            return self(task_id)

        def blocking(_hook: CambHook, task_id: str, kind: object = "tts") -> CambTaskStatus:
            return self(task_id)

        monkeypatch.setattr(CambHook, "get_task_status", blocking)
        monkeypatch.setattr(CambHook, "aget_task_status", answer)
        return self


def set_camb_connection(monkeypatch: pytest.MonkeyPatch, host: str = "https://camb.test/apis") -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT",
        json.dumps({"conn_type": "camb", "host": host, "password": "test-api-key"}),
    )
