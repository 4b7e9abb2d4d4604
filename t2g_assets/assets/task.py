"""Task-level assets, partitioned by database x "task@budget".

As in ``database.py``, the method is imported inside each asset, never at module level, so
the code server starts without torch; the value each asset returns is named in its docstring.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    Output,
    asset,
)
from dagster_duckdb import DuckDBResource

from t2g_assets.assets.database import load_snapshot
from t2g_assets.configs import (
    ABLATION, AblationParams, KRRParams, StorageParams, TeacherParams, krr_config, teacher_config,
)
from t2g_assets.partitions import split_task_budget, task_partitions, to_database
from t2g_assets.resources import ComputeDevice, T2GSettings
from t2g_assets.versions import CODE_VERSION

DB_INPUT = {"partition_mapping": to_database}


def partition(context: AssetExecutionContext) -> tuple[str, str, str, str]:
    """(database, task, budget, "task@budget") of the running partition."""
    keys = context.partition_key.keys_by_dimension
    task, budget = split_task_budget(keys["task_budget"])
    return keys["database"], task, budget, keys["task_budget"]


def task_manifest(context: AssetExecutionContext, raw_tables: dict) -> dict:
    """The snapshotted manifest of this partition's task; a clear error when there is none."""
    from t2g_lib.data.registry import missing_task

    database, task, _, _ = partition(context)
    if task not in raw_tables["tasks"]:
        raise ValueError(missing_task(database, task, raw_tables["tasks"]))
    return raw_tables["tasks"][task]


def load_task(context: AssetExecutionContext, duckdb: DuckDBResource, raw_tables: dict):
    """The task of this partition (manifest and labels) from the snapshot."""
    from t2g_lib.data.duck import read_labels
    from t2g_lib.task_data import SPLITS, task_from_snapshot

    database, task, _, _ = partition(context)
    manifest = task_manifest(context, raw_tables)
    with duckdb.get_connection() as conn:
        labels = read_labels(conn, database, task, list(SPLITS))
    return task_from_snapshot(task, manifest, labels)


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="distillation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
)
def sbm_structure(
    context: AssetExecutionContext,
    config: StorageParams,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining,
) -> Output:
    """``SyntheticGraph``: synthetic nodes per table allocated to cluster blocks, FK edges
    drawn from the SBM, rows stored as the config says (every method at this budget
    stores them alike)."""
    from t2g_lib.feature_codec import FeatureCodec
    from t2g_lib.sbm import budget_for, generate_sbm, sbm_markdown

    database, _, budget, _ = partition(context)
    task = load_task(context, duckdb, raw_tables)
    db = load_snapshot(duckdb, database, raw_tables, columns={})
    pre = cluster_pretraining
    codec = FeatureCodec.fit(pre.embeddings, config.feature_dim, config.precision, seed=settings.seed)
    budgets = budget_for(db, budget, codec)
    graph = generate_sbm(db, pre.pseudo_labels, pre.centroids, budgets, task.entity_table, settings.seed, codec)
    budget_md, relations_md = sbm_markdown(graph, db, pre.pseudo_labels, budgets)
    return Output(
        graph,
        metadata={
            "budget": MetadataValue.md(budget_md),
            "linking_matrices": MetadataValue.md(relations_md),
            "synthetic_nodes": sum(budgets.values()),
            "payload_bytes": graph.nbytes(),
            "real_rows": sum(len(t.df) for t in db.table_dict.values()),
        },
    )


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="distillation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "validated_schema": AssetIn(**DB_INPUT)},
    kinds={"sklearn", "duckdb"},
)
def teacher_labels(
    context: AssetExecutionContext,
    config: TeacherParams,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    validated_schema,
) -> Output:
    """``TeacherLabels``: every train label's out-of-fold prediction by a GBM on DuckDB
    aggregates fitted on the other entities, the soft labels the distilled examples carry."""
    from t2g_lib.entity_aggregates import aggregate_columns
    from t2g_lib.task_data import column_types, hidden_columns
    from t2g_lib.teacher import teacher_labels as fit_teacher

    task = load_task(context, duckdb, raw_tables)
    types, hidden = column_types(validated_schema), hidden_columns(raw_tables["tasks"])
    needed = aggregate_columns(task.entity_table, types, hidden)
    db = load_snapshot(duckdb, partition(context)[0], raw_tables, columns=needed)
    teacher = fit_teacher(db, task, types, hidden, teacher_config(config, settings.seed), log=context.log.info)
    return Output(teacher, metadata={
        f"out_of_fold_{teacher.metric}": teacher.score,
        "labels": 0 if teacher.soft is None else len(teacher.soft),
        "folds": teacher.folds,
        "weight": config.weight,
        "seconds": teacher.seconds,
    })


def _krr_asset(name: str, group: str, params: type, description: str, **fixed: Any):
    """A KRR distillation stage: T2G itself, or an ablation with some knobs ``fixed``."""

    @asset(
        name=name,
        description=description,
        code_version=CODE_VERSION,
        partitions_def=task_partitions,
        group_name=group,
        ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
        kinds={"pytorch"},
    )
    def _stage(
        context: AssetExecutionContext,
        config: params,
        settings: T2GSettings,
        device: ComputeDevice,
        duckdb: DuckDBResource,
        raw_tables: dict,
        cluster_pretraining,
        sbm_structure,
        teacher_labels,
    ) -> Output:
        from t2g_lib.krr import distill_features

        task = load_task(context, duckdb, raw_tables)
        db = load_snapshot(duckdb, partition(context)[0], raw_tables, columns={})
        pre = cluster_pretraining
        out = distill_features(
            sbm_structure, pre.embeddings, pre.pseudo_labels, pre.centroids, db, task,
            krr_config(config, settings.seed, **fixed), device=device.torch_device(), log=context.log.info,
            teacher=teacher_labels,
        )
        graph, history = out.graph, out.history
        return Output(
            out,
            metadata={
                "distill_seconds": history["seconds"],
                "best_step": history["best_step"],
                "val_score_start": history["start_score"],
                "val_score_best": history["best_score"],
                "payload_bytes": graph.nbytes(),
                "labelled_examples": graph.num_examples(),
                "kept": history["kept"],  # "krr", or the herding coreset when its GNN val was higher
                "train_labels": history["labels"],  # "teacher" (soft) or "hard"
                **{k: history[k] for k in ("gnn_best_score", "coreset_gnn_val", "coreset_label_times",
                                             "coreset_labels", "conceded_at") if k in history},
            },
        )

    return _stage


distilled_features = _krr_asset(
    "distilled_features", "distillation", KRRParams,
    "KRR-distilled synthetic features and soft labels (closed-form ridge, one optimizer).",
)
ablation_features = _krr_asset(
    "ablation_features", "comparison", AblationParams,
    "The ablation: KRR distillation of the same structure without the pseudo-label term.", **ABLATION,
)


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="comparison",
    ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
)
def baseline_graphs(
    context: AssetExecutionContext,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining,
    sbm_structure,
    distilled_features,
) -> Output:
    """``BaselineGraphs``: what T2G is compared with at its budget, the centroid start and
    four coresets in as many bytes as T2G's distilled graph."""
    from t2g_lib.baselines import build_baselines

    task = load_task(context, duckdb, raw_tables)
    db = load_snapshot(duckdb, partition(context)[0], raw_tables)
    built = build_baselines(db, cluster_pretraining, sbm_structure, task, settings.seed, log=context.log.info,
                            budget_bytes=distilled_features.graph.nbytes())
    return Output(built, metadata={f"{name}_seconds": s for name, s in built.seconds.items()})


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="publication",
    ins={"raw_tables": AssetIn(**DB_INPUT)},
    deps=["evaluation_scores"],
    kinds={"duckdb", "parquet"},
)
def distilled_database(
    context: AssetExecutionContext,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    distilled_features,
) -> Output:
    """``DistilledDatabase``, the published result: RelBench folder, DuckDB schema, PyG
    HeteroData file.

    Runs only after ``evaluation_scores``' blocking leakage and utility checks passed; the IO
    manager writes it (``DistilledDatabase.save``) into this partition's folder.
    """
    from relbench.manifest import DatasetManifest, TaskManifest

    from t2g_lib.data.duck import write_tables
    from t2g_lib.export import DistilledDatabase

    database, _, _, task_budget = partition(context)
    manifest = DatasetManifest.from_dict(raw_tables["manifest"])
    source = settings.dataset_path(database)
    published = DistilledDatabase(
        graph=distilled_features.graph,
        name=f"{database}-distilled-{task_budget}",
        task_manifest=TaskManifest.from_dict(task_manifest(context, raw_tables)),
        source_dir=source,
        val_timestamp=manifest.val_timestamp,
        test_timestamp=manifest.test_timestamp,
    )
    with duckdb.get_connection() as conn:
        write_tables(conn, f"{database}__distilled__{task_budget}", published.tables())
    return Output(published, metadata={"nodes": MetadataValue.json(published.graph.num_nodes())})
