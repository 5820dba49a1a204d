"""Entry point Airflow's ProvidersManager calls to discover this provider.

Kept free of heavy imports: every ``airflow`` CLI command runs it.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-camb",
        "name": "Camb.ai",
        # The link goes last: the UI glues a mid-sentence link to the word after it.
        "description": "The Camb.ai speech API: text to speech into any storage, bulk TTS results, task "
        "sensors and a streaming transfer of the audio. `Camb.ai <https://camb.ai/>`__",
        "integrations": [
            {
                "integration-name": "Camb.ai",
                "external-doc-url": "https://docs.camb.ai/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Camb.ai", "python-modules": ["airflow_provider_camb.hooks.camb"]}],
        "operators": [
            {
                "integration-name": "Camb.ai",
                "python-modules": [
                    "airflow_provider_camb.operators.camb",
                    "airflow_provider_camb.operators.create_tts",
                    "airflow_provider_camb.operators.text_to_speech",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Camb.ai", "python-modules": ["airflow_provider_camb.sensors.camb"]}
        ],
        "triggers": [
            {"integration-name": "Camb.ai", "python-modules": ["airflow_provider_camb.triggers.camb"]}
        ],
        "transfers": [
            {
                "source-integration-name": "Camb.ai",
                "target-integration-name": "Common IO",
                "python-module": "airflow_provider_camb.transfers.camb_to_storage",
            }
        ],
        "connection-types": [
            {
                "connection-type": "camb",
                "hook-class-name": "airflow_provider_camb.hooks.camb.CambHook",
                "hook-name": "Camb.ai",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"password": "API Key", "host": "API Base URL"},
                    "placeholders": {
                        "host": "https://client.camb.ai/apis",
                        "password": "Your Camb.ai API key",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "How long to wait for each API response. Default 60.",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries on connection errors, timeouts, 408, 429 and 5xx. Default 5.",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
                    },
                },
            }
        ],
    }
