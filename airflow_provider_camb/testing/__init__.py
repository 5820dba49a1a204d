"""A local Camb.ai API emulator for tests, demos and benchmarks (standard library only).

``from airflow_provider_camb.testing import CambEmulator`` never imports Airflow, so the
emulator works in any Python process.  The names below load on first use: pytest imports this
package for the ``camb_emulator`` plugin in every session, and most sessions never start a server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_camb.testing.emulator import ENDPOINTS, OUTCOMES, CambEmulator, JournalEntry

__all__ = ["ENDPOINTS", "OUTCOMES", "CambEmulator", "JournalEntry"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("airflow_provider_camb.testing.emulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
