"""Running DAGs for real in tests: register, ``dag.test()``, read XComs from the metadata DB."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG


EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"


def load_example_dag(dag_id: str) -> DAG:
    """The example DAG ``example_dags/<dag_id>.py`` as the DAG processor parses it (no import errors)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def one_task_dag(dag_id: str, operator: type, task_id: str, **operator_kwargs: Any) -> DAG:
    """A manually triggered DAG holding one task, ``operator(task_id=task_id, **operator_kwargs)``."""
    from datetime import datetime, timezone

    from airflow.sdk import DAG

    with DAG(
        dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False
    ) as dag:
        operator(task_id=task_id, **operator_kwargs)
    return dag


class DagRunner:
    """Registers a DAG built inside a test, runs it with ``dag.test()`` and reads its results."""

    def run(
        self, dag: DAG, *, run_conf: dict[str, Any] | None = None, logical_date: datetime | None = None
    ) -> DagRun:
        """Serialise ``dag`` into the DB (``dag.test()`` only runs serialised DAGs) and run it once.

        :param logical_date: the run's logical date, for scheduled DAGs (default: now).
        """
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(collect_dags=False)
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)
        if logical_date is None:
            return dag.test(run_conf=run_conf)
        return dag.test(run_conf=run_conf, logical_date=logical_date)

    def xcom(self, dag_run: DagRun, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """The XCom value one task instance pushed, or ``None``."""
        values = self.xcoms(dag_run, task_id, key)
        return values.get(map_index)

    def xcoms(self, dag_run: DagRun, task_id: str, key: str = "return_value") -> dict[int, Any]:
        """``map_index -> value`` for every instance of ``task_id`` that pushed ``key``."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.scalars(
                XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
            ).all()
            return {row.map_index: XComModel.deserialize_value(row) for row in rows}

    def task_states(self, dag_run: DagRun) -> dict[str, str | None]:
        """``task_id[map_index] -> state`` for every task instance of the run."""
        from airflow.utils.session import create_session

        with create_session() as session:
            instances = dag_run.get_task_instances(session=session)
            return {
                ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti.state
                for ti in instances
            }
