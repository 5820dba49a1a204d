"""Translate texts with Camb.ai's batch translation: create tasks, wait, push the translations."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_camb.operators.camb import CambBulkResultsOperator
from airflow_provider_camb.sensors.camb import CambTaskSensor

DOC_MD = """
### Camb.ai batch translation

1. `create_translations` creates one translation task per batch of texts (`POST /translate`),
   never twice for the same batch within a run: a create whose answer is lost is reported, not
   sent again.
2. `wait_for_translations` waits, deferred to the triggerer, until every task has succeeded.
3. `fetch_translations` fetches the translated texts of every run (`POST /translation-results`,
   five runs per call) and pushes `{"<run_id>": ["translated text", ...]}` to XCom.

Languages are Camb.ai's integer language IDs (`GET /source-languages`, `GET /target-languages`).
`make demo`'s emulator serves every endpoint used here.
"""

with DAG(
    dag_id="example_camb_translation",
    schedule=None,
    catchup=False,
    tags=["example", "camb.ai"],
    doc_md=DOC_MD,
    params={
        "batches": Param(
            [["Welcome aboard.", "The next stop is the harbour."], ["Mind the gap."]],
            type="array",
            items={"type": "array", "items": {"type": "string"}},
            title="Batches of texts",
            description="Each batch becomes one translation task.",
        ),
        "source_language": Param(1, type="integer", title="Source language ID (1: en-us)"),
        "target_language": Param(54, type="integer", title="Target language ID (54: es-es)"),
    },
) as dag:
    # [START howto_operator_camb_translation]
    @task
    def create_translations(params: dict[str, Any] | None = None) -> list[str]:
        from airflow_provider_camb.hooks.camb import CambHook

        assert params is not None
        hook = CambHook()
        try:
            return [
                hook.create_task(
                    {
                        "texts": batch,
                        "source_language": params["source_language"],
                        "target_language": params["target_language"],
                    },
                    "translation",
                )
                for batch in params["batches"]
            ]
        finally:
            hook.close()

    wait_for_translations = CambTaskSensor(
        task_id="wait_for_translations",
        result_kind="translation",
        camb_task_ids=create_translations(),
        deferrable=True,
        poke_interval=5,
        timeout=60 * 60,
    )

    fetch_translations = CambBulkResultsOperator(
        task_id="fetch_translations",
        result_kind="translation",
        run_ids=wait_for_translations.output,
    )
    # return_value: {"<run_id>": ["translated text", ...]}
    # [END howto_operator_camb_translation]
