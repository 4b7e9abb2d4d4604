"""The full-data references every distilled graph is measured against: the evaluation GNNs
trained on the whole database, and a gradient-boosting model on per-label aggregates.

Task-level like the stages they serve; the method is imported inside each asset (see
``database.py``).
"""

from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset
from dagster_duckdb import DuckDBResource

from t2g_assets.assets.database import load_snapshot
from t2g_assets.assets.task import DB_INPUT, load_task, partition
from t2g_assets.metadata import frame_table
from t2g_assets.partitions import task_partitions
from t2g_assets.resources import ComputeDevice, T2GSettings
from t2g_assets.versions import CODE_VERSION


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="evaluation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
    kinds={"pytorch"},
)
def full_training(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining,
) -> Output:
    """``FullTraining``: each evaluation model trained on the whole database and scored on
    real test, the reference every distilled graph is measured against."""
    from t2g_lib.full_training import train_full_models

    task = load_task(context, duckdb, raw_tables)
    db = load_snapshot(duckdb, partition(context)[0], raw_tables)
    full = train_full_models(
        db, cluster_pretraining.embeddings, task, list(settings.eval_models), (settings.seed,),
        epochs=settings.eval_epochs, device=device.torch_device(), log=context.log.info,
    )
    return Output(full, metadata={
        "models": frame_table(full.records),
        "storage_bytes": full.storage_bytes,
        "no_temporal_leakage": bool(full.leakage["passed"]),
    })


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="evaluation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "validated_schema": AssetIn(**DB_INPUT)},
    kinds={"sklearn", "duckdb"},
)
def gbm_reference(
    context: AssetExecutionContext,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    validated_schema,
) -> Output:
    """``GBMReference``: a histogram gradient-boosting model on the entity's columns and, per
    child table, counts, recency and numeric aggregates of rows stamped <= T (DuckDB)."""
    from t2g_lib.entity_aggregates import aggregate_columns
    from t2g_lib.gbm_reference import fit_gbm_reference
    from t2g_lib.task_data import column_types, hidden_columns

    task = load_task(context, duckdb, raw_tables)
    types, hidden = column_types(validated_schema), hidden_columns(raw_tables["tasks"])
    needed = aggregate_columns(task.entity_table, types, hidden)
    db = load_snapshot(duckdb, partition(context)[0], raw_tables, columns=needed)
    ref = fit_gbm_reference(db, task, types, hidden, settings.seed, log=context.log.info)
    return Output(ref, metadata={
        "test": MetadataValue.json({k: v for k, v in ref.record.items() if isinstance(v, float)}),
        "features": len(ref.features),
        "feature_seconds": ref.feature_seconds,
        "rounds": ref.rounds,
    })
