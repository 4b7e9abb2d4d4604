"""Partitions: one per database, and database x "task@budget" for the task-level stages.

Dagster allows two partition dimensions. Task-level assets need three facts (database, task,
budget), so the second dimension carries ``task@budget`` (``player-retention@0.01``): two
budgets of one task are two partitions that coexist, and the ``database`` dimension maps
task-level partitions onto the database-level stages with the built-in
``MultiToSingleDimensionPartitionMapping``, keeping lineage and automation intact.
"""

from __future__ import annotations

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
)

database_partitions = DynamicPartitionsDefinition(name="database")
task_budget_partitions = DynamicPartitionsDefinition(name="task_budget")
task_partitions = MultiPartitionsDefinition(
    {"database": database_partitions, "task_budget": task_budget_partitions}
)
to_database = MultiToSingleDimensionPartitionMapping(partition_dimension_name="database")


def task_budget_key(task: str, budget: str | float) -> str:
    """``player-retention@0.01``: a task and its distillation budget (a ratio, or ``n500``)."""
    return f"{task}@{budget}"


def split_task_budget(key: str) -> tuple[str, str]:
    task, _, budget = key.rpartition("@")
    if not task or not budget:
        raise ValueError(f"task partition {key!r} is not of the form 'task@budget'")
    return task, budget


def task_partition_key(database: str, task: str, budget: str | float) -> MultiPartitionKey:
    return MultiPartitionKey({"database": database, "task_budget": task_budget_key(task, budget)})
