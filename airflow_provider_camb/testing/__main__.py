"""``python -m airflow_provider_camb.testing``: same as the ``camb-emulator`` command."""

from __future__ import annotations

import sys

from airflow_provider_camb.testing.cli import main

sys.exit(main())
