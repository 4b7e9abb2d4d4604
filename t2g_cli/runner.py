"""Materialize t2g's assets for one partition through Dagster, stage by stage.

The CLI runs the very assets the UI shows, against the project's Dagster instance
(``DAGSTER_HOME``), so every CLI run appears in the UI with its lineage and metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DATABASE_STAGES = ["raw_tables", "validated_schema", "column_tokens", "cluster_pretraining"]
TASK_STAGES = ["sbm_structure", "distilled_features", "evaluation_scores", "distilled_database"]


@dataclass
class StageRun:
    stage: str
    seconds: float
    success: bool
    failed_checks: list[str] = field(default_factory=list)


def instance():
    """The project's Dagster instance (``DAGSTER_HOME``), or a temporary one when unset."""
    from dagster import DagsterInstance

    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def register(inst, database: str, task_budgets: list[str]) -> None:
    from t2g_assets.partitions import database_partitions, task_budget_partitions

    if not inst.has_dynamic_partition(database_partitions.name, database):
        inst.add_dynamic_partitions(database_partitions.name, [database])
    missing = [k for k in task_budgets if not inst.has_dynamic_partition(task_budget_partitions.name, k)]
    if missing:
        inst.add_dynamic_partitions(task_budget_partitions.name, missing)


def materialize_stages(
    defs,
    stages: list[str],
    partition_key,
    inst,
    on_stage: Callable[[StageRun], None] = lambda r: None,
) -> list[StageRun]:
    """One Dagster run per stage, in order; stops at the first failed stage or blocking check."""
    import time

    from dagster import AssetKey, materialize

    assets = list(defs.assets)
    resources = defs.resources
    runs = []
    for stage in stages:
        start = time.perf_counter()
        result = materialize(
            assets,
            selection=[AssetKey(stage)],
            partition_key=partition_key,
            instance=inst,
            resources=resources,
            raise_on_error=False,
            tags={"t2g/source": "cli"},
        )
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        run = StageRun(stage, time.perf_counter() - start, result.success, failed)
        runs.append(run)
        on_stage(run)
        if not result.success:
            break
    return runs
