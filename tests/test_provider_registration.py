"""Airflow discovers the provider: entry point, provider info, connection type, CLI, test button."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from airflow_provider_camb.get_provider_info import get_provider_info

if TYPE_CHECKING:
    import requests_mock as requests_mock_module

PACKAGE_NAME = "airflow-provider-camb"
HOOK_CLASS = "airflow_provider_camb.hooks.camb.CambHook"
MOCK_BASE_URL = "http://camb.invalid/apis"


def _listed_modules() -> list[str]:
    info = get_provider_info()
    modules = [
        module
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info.get(kind, [])
        for module in entry["python-modules"]
    ]
    modules += [entry["python-module"] for entry in info.get("transfers", [])]
    return modules


def _airflow_cli(*args: str) -> Any:
    """Run the ``airflow`` CLI in a subprocess with the test environment; return its JSON output."""
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), *args, "--output", "json"],
        env=dict(os.environ),  # conftest's AIRFLOW_HOME, no example DAGs, no leaked connections
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    # Airflow may log to stdout first (e.g. "Unit test configuration loaded"); the table is the JSON line.
    (table,) = [line for line in result.stdout.splitlines() if line.startswith("[")]
    return json.loads(table)


# -- entry point and provider info --------------------------------------------------------------


def test_entry_point_resolves_to_get_provider_info() -> None:
    ours = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_camb.")
    ]

    assert len(ours) == 1, f"expected one apache_airflow_provider entry point, got {ours}"
    assert ours[0].load() is get_provider_info


def test_provider_info_validates_against_airflows_own_schema() -> None:
    import airflow

    schema_path = Path(airflow.__file__).with_name("provider_info.schema.json")
    schema = json.loads(schema_path.read_text())

    jsonschema.validate(get_provider_info(), schema)


def test_package_name_is_the_canonical_distribution_name() -> None:
    # Anything else makes discovery raise, which breaks every `airflow` CLI command.
    assert get_provider_info()["package-name"] == PACKAGE_NAME


def test_provider_info_lists_every_role() -> None:
    modules = _listed_modules()

    assert modules == [
        "airflow_provider_camb.hooks.camb",
        "airflow_provider_camb.operators.camb",
        "airflow_provider_camb.operators.create_tts",
        "airflow_provider_camb.operators.text_to_speech",
        "airflow_provider_camb.sensors.camb",
        "airflow_provider_camb.triggers.camb",
        "airflow_provider_camb.transfers.camb_to_storage",
    ]


@pytest.mark.parametrize("module", _listed_modules())
def test_every_listed_module_is_importable(module: str) -> None:
    importlib.import_module(module)


# -- what Airflow's ProvidersManager makes of it ----------------------------------------------------


def test_providers_manager_knows_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_camb import __version__

    provider = ProvidersManager().providers[PACKAGE_NAME]

    assert provider.version == __version__
    assert provider.data["name"] == "Camb.ai"


def test_camb_connection_type_is_registered_with_camb_hook() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook = ProvidersManagerTaskRuntime().hooks["camb"]

    assert hook is not None
    assert hook.hook_class_name == HOOK_CLASS
    assert hook.connection_id_attribute_name == "camb_conn_id"
    assert hook.hook_name == "Camb.ai"
    assert hook.package_name == PACKAGE_NAME
    assert hook.connection_testable


def test_connection_form_has_timeout_and_max_retries_fields() -> None:
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets

    timeout = widgets["extra__camb__timeout"]
    max_retries = widgets["extra__camb__max_retries"]
    assert timeout.hook_class_name == HOOK_CLASS
    assert (timeout.field_name, timeout.field["value"]) == ("timeout", 60)
    assert (max_retries.field_name, max_retries.field["value"]) == ("max_retries", 5)
    assert timeout.field["schema"]["title"] == "Timeout (seconds)"
    assert max_retries.field["schema"]["type"] == ["integer", "null"]
    assert not timeout.is_sensitive and not max_retries.is_sensitive


def test_connection_form_hides_unused_fields_and_relabels_password_as_api_key() -> None:
    from airflow.providers_manager import ProvidersManager

    ui = next(
        meta
        for meta in ProvidersManager().iter_connection_type_hook_ui_metadata()
        if meta.connection_type == "camb"
    )

    assert ui.hook_class_name == HOOK_CLASS
    assert ui.hook_name == "Camb.ai"
    behaviour = ui.field_behaviour
    assert behaviour is not None
    assert sorted(behaviour["hidden_fields"]) == ["login", "port", "schema"]
    assert behaviour["relabeling"]["password"] == "API Key"
    assert behaviour["relabeling"]["host"] == "API Base URL"
    assert behaviour["placeholders"]["host"] == "https://client.camb.ai/apis"


# -- the airflow CLI ----------------------------------------------------------------------------------


def test_airflow_providers_list_shows_the_provider() -> None:
    from airflow_provider_camb import __version__

    providers = _airflow_cli("providers", "list")

    ours = [row for row in providers if row["package_name"] == PACKAGE_NAME]
    assert len(ours) == 1, providers
    assert ours[0]["version"] == __version__


def test_airflow_providers_hooks_shows_the_camb_connection_type() -> None:
    hooks = _airflow_cli("providers", "hooks")

    camb = [row for row in hooks if row["connection_type"] == "camb"]
    assert camb == [
        {
            "connection_type": "camb",
            "class": HOOK_CLASS,
            "conn_id_attribute_name": "camb_conn_id",
            "package_name": PACKAGE_NAME,
            "hook_name": "Camb.ai",
        }
    ]


# -- the Test button (Connection.test_connection builds the hook from the registered type) ----------


def _connection(password: str = "secret-key-123") -> Any:
    from airflow.sdk import Connection

    return Connection(conn_id="camb_under_test", conn_type="camb", password=password, host=MOCK_BASE_URL)


def test_test_connection_succeeds_with_a_valid_key(requests_mock: requests_mock_module.Mocker) -> None:
    requests_mock.get(f"{MOCK_BASE_URL}/source-languages", json=[{"id": 1, "language": "en-us"}] * 3)

    ok, message = _connection().test_connection()

    assert ok, message
    assert MOCK_BASE_URL in message
    assert "3 source languages" in message
    (request,) = requests_mock.request_history
    assert request.method == "GET"
    assert request.headers["x-api-key"] == "secret-key-123"


def test_test_connection_reports_a_rejected_key(requests_mock: requests_mock_module.Mocker) -> None:
    requests_mock.get(
        f"{MOCK_BASE_URL}/source-languages", status_code=401, json={"detail": "Invalid API key"}
    )

    ok, message = _connection().test_connection()

    assert not ok
    assert "rejected the API key" in message
    assert "HTTP 401" in message
    assert "secret-key-123" not in message
    assert requests_mock.call_count == 1  # 401 is never retried


def test_test_connection_without_a_key_says_so(requests_mock: requests_mock_module.Mocker) -> None:
    ok, message = _connection(password="").test_connection()

    assert not ok
    assert "no API key" in message
    assert requests_mock.call_count == 0


def test_the_description_puts_its_link_last_so_the_ui_does_not_glue_it_to_a_word():
    description = get_provider_info()["description"]
    assert description.rstrip().endswith("`Camb.ai <https://camb.ai/>`__")
    assert description.count("<https://") == 1


def test_no_placeholder_is_declared_for_a_field_airflow_never_reads_placeholders_of():
    (connection_type,) = get_provider_info()["connection-types"]
    assert set(connection_type["ui-field-behaviour"]["placeholders"]) == {"host", "password"}


def test_the_operators_are_importable_from_the_operators_package() -> None:
    import airflow_provider_camb.operators as operators
    from airflow_provider_camb.operators.camb import CambBulkResultsOperator, CambBulkTTSResultsOperator
    from airflow_provider_camb.operators.create_tts import CambCreateTTSTasksOperator
    from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator

    assert operators.CambBulkResultsOperator is CambBulkResultsOperator
    assert operators.CambBulkTTSResultsOperator is CambBulkTTSResultsOperator
    assert operators.CambCreateTTSTasksOperator is CambCreateTTSTasksOperator
    assert operators.CambTextToSpeechOperator is CambTextToSpeechOperator
    with pytest.raises(AttributeError):
        operators.NoSuchOperator  # noqa: B018
