"""Nightly re-check: the same fingerprint comparison as the sensor, on a fixed clock.

It requests runs only for databases whose files changed since their last ``raw_tables``
materialization, so an unchanged database costs nothing.
"""

from dagster import ScheduleEvaluationContext, SkipReason, schedule

from t2g_assets.jobs import database_job
from t2g_assets.resources import T2GSettings
from t2g_assets.sensors import plan_updates


@schedule(job=database_job, cron_schedule="0 2 * * *", execution_timezone="UTC")
def nightly_recheck(context: ScheduleEvaluationContext, settings: T2GSettings):
    additions, requests = plan_updates(context.instance, settings)
    for addition in additions:
        context.instance.add_dynamic_partitions(addition.partitions_def_name, list(addition.partition_keys))
    return requests or SkipReason("no database changed since its last distillation")
