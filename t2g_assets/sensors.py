"""Sensors: new dataset folders register themselves; changed sources re-distill.

``dataset_sensor`` scans the data directory. A new folder adds its partitions (the database
and every ``task@budget`` of its tasks). A database whose content fingerprint differs from the
one recorded on its latest ``raw_tables`` materialization gets one database-level run (the
fingerprint is in the run key, so a change is distilled once); an unchanged one costs nothing.
``redistill_tasks`` follows every successful database-level run with the task-level runs of
that database's tasks.
"""


from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from t2g_assets.jobs import database_job, task_job
from t2g_assets.partitions import (
    database_partitions,
    task_budget_key,
    task_budget_partitions,
    task_partition_key,
)
from t2g_assets.resources import T2GSettings


def recorded_fingerprint(instance, database: str) -> str | None:
    """The source fingerprint stored on the latest ``raw_tables`` materialization, if any."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("raw_tables"), asset_partitions=[database]), limit=1
    ).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("source_fingerprint")
    return getattr(value, "value", value)


def plan_updates(instance, settings: T2GSettings) -> tuple[list, list[RunRequest]]:
    """Partition additions and run requests that bring every database up to date."""
    from t2g_lib.data.registry import discover_datasets, fingerprint_dataset, list_tasks

    found = discover_datasets(settings.data_dir)
    known_dbs = set(instance.get_dynamic_partitions(database_partitions.name))
    known_tasks = set(instance.get_dynamic_partitions(task_budget_partitions.name))
    new_dbs = sorted(set(found) - known_dbs)
    new_tasks = sorted(
        {task_budget_key(t, b) for path in found.values() for t in list_tasks(path) for b in settings.budgets} - known_tasks
    )
    requests = []
    for name, path in sorted(found.items()):
        fingerprint = fingerprint_dataset(path)
        if recorded_fingerprint(instance, name) != fingerprint:
            requests.append(
                RunRequest(
                    run_key=f"{name}:{fingerprint}",
                    job_name=database_job.name,
                    partition_key=name,
                    tags={"t2g/fingerprint": fingerprint},
                )
            )
    additions = []
    if new_dbs:
        additions.append(database_partitions.build_add_request(new_dbs))
    if new_tasks:
        additions.append(task_budget_partitions.build_add_request(new_tasks))
    return additions, requests


@sensor(
    jobs=[database_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers new dataset folders and re-distills databases whose files changed.",
)
def dataset_sensor(context: SensorEvaluationContext, settings: T2GSettings):
    additions, requests = plan_updates(context.instance, settings)
    if not additions and not requests:
        return SkipReason("no new or changed datasets")
    return SensorResult(run_requests=requests, dynamic_partitions_requests=additions)


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[database_job],
    request_job=task_job,
    default_status=DefaultSensorStatus.RUNNING,
    description="After a database is re-distilled, re-runs the task-level chain of each of its tasks.",
)
def redistill_tasks(context, settings: T2GSettings):
    from t2g_lib.data.registry import list_tasks

    database = context.dagster_run.tags.get("dagster/partition")
    if database is None:
        return SkipReason("run was not partitioned")
    path = settings.dataset_path(database)
    return [
        RunRequest(
            run_key=f"{context.dagster_run.run_id}:{task}@{budget}",
            partition_key=task_partition_key(database, task, budget),
        )
        for task in list_tasks(path)
        for budget in settings.budgets
    ]
