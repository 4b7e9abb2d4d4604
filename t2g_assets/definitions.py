"""The t2g code location: assets, checks, jobs, sensors, schedules and resources."""

import os
from pathlib import Path

from collections.abc import Mapping

from dagster import Definitions, ExecutorDefinition, LoggerDefinition
from dagster_duckdb import DuckDBResource

from t2g_assets.assets.database import cluster_pretraining, column_tokens, raw_tables, validated_schema
from t2g_assets.assets.source import dataset_source
from t2g_assets.assets.evaluation import comparison_scores, evaluation_scores
from t2g_assets.assets.task import (
    ablation_features,
    baseline_graphs,
    distilled_database,
    distilled_features,
    sbm_structure,
    teacher_labels,
)
from t2g_assets.assets.reference import full_training, gbm_reference
from t2g_assets.executors import executor_from_env
from t2g_assets.io_manager import StageIOManager
from t2g_assets.jobs import database_job, task_job
from t2g_assets.resources import ComputeDevice, T2GSettings, default_data_dir, default_storage_dir
from t2g_assets.schedules import nightly_recheck
from t2g_assets.sensors import dataset_sensor, redistill_tasks


def build_definitions(
    data_dir: str | None = None,
    storage_dir: str | None = None,
    device: str | None = None,
    seed: int = 0,
    executor: ExecutorDefinition | None = None,
    loggers: Mapping[str, LoggerDefinition] | None = None,
    code_version: str | None = None,
    **settings: object,
) -> Definitions:
    """Definitions over a data and a storage folder (tests point them at temporary ones).

    ``loggers`` replace Dagster's default console logger for every job (the CLI's quiet one);
    ``code_version`` replaces the assets' (the source hash of ``versions.py``).
    """
    data_dir = data_dir or default_data_dir()
    if "budgets" not in settings and os.environ.get("T2G_BUDGETS"):
        settings["budgets"] = [b.strip() for b in os.environ["T2G_BUDGETS"].split(",") if b.strip()]
    storage_dir = storage_dir or default_storage_dir()
    Path(storage_dir).mkdir(parents=True, exist_ok=True)
    stages = [
        raw_tables,
        validated_schema,
        column_tokens,
        cluster_pretraining,
        sbm_structure,
        teacher_labels,
        distilled_features,
        ablation_features,
        baseline_graphs,
        full_training,
        gbm_reference,
        evaluation_scores,
        comparison_scores,
        distilled_database,
    ]
    if code_version is not None:
        stages = [a.map_asset_specs(lambda spec: spec.replace_attributes(code_version=code_version)) for a in stages]
    return Definitions(
        assets=[dataset_source, *stages],
        jobs=[database_job, task_job],
        sensors=[dataset_sensor, redistill_tasks],
        schedules=[nightly_recheck],
        executor=executor or executor_from_env(),
        loggers=loggers,
        resources={
            "settings": T2GSettings(
                data_dir=data_dir,
                storage_dir=storage_dir,
                text_cache_dir=str(Path(storage_dir) / "_shared" / "text_cache"),
                seed=seed,
                **settings,
            ),
            "device": ComputeDevice(
                device=device or os.environ.get("T2G_DEVICE", "auto"),
                num_threads=int(os.environ.get("T2G_NUM_THREADS", "0")),
            ),
            "duckdb": DuckDBResource(database=str(Path(storage_dir) / "t2g.duckdb")),
            "io_manager": StageIOManager(base_dir=storage_dir),
        },
    )


defs = build_definitions()
