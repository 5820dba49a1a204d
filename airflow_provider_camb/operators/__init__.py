"""The provider's operators, importable from here or from their modules.

Loaded on first use (PEP 562), so importing one operator does not import the others' modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "CambBulkResultsOperator": "airflow_provider_camb.operators.camb",
    "CambBulkTTSResultsOperator": "airflow_provider_camb.operators.camb",
    "CambCreateTTSTasksOperator": "airflow_provider_camb.operators.create_tts",
    "CambTextToSpeechOperator": "airflow_provider_camb.operators.text_to_speech",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)
