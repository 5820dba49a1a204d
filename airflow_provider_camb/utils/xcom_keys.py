"""XCom keys pushed by this provider's operators and sensors, in one place.

``return_value`` (Airflow's default key) always holds each task's main, mappable, JSON-safe output.
"""

from __future__ import annotations

#: CambBulkTTSResultsOperator: ``{"<run_id>": "<url>"}`` of the runs that did arrive, pushed before
#: the task fails for missing runs (with ``fail_on_missing=True``).
DELIVERED_URLS = "camb_delivered_urls"

#: CambBulkTTSResultsOperator and CambTTSToStorageOperator: ``{"<run_id>": "<reason>"}`` of the runs
#: that could not be delivered.
MISSING_RUN_IDS = "camb_missing_run_ids"

#: CambTTSTaskSensor: ``{"<camb task id>": <run_id>}``.
RUN_IDS_BY_TASK = "camb_run_ids_by_task"

#: CambTTSToStorageOperator: ``{"<run_id>": <size in bytes>}`` of every file at its destination.
FILE_SIZES = "camb_file_sizes"

#: CambCreateTTSTasksOperator: ``{"<name>": ["<camb task id>", ...]}``, one ID per segment of each
#: text in order; ``null`` for a segment whose create was sent but not answered (it may exist).
#: Pushed on success and before the task fails.
CREATED_TASKS = "camb_created_tasks"
