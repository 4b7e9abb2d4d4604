"""Task-level assets, partitioned by database x "task@budget"."""


import time

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    Output,
    asset,
)
from dagster_duckdb import DuckDBResource

from t2g_assets.assets.database import load_snapshot
from t2g_assets.partitions import split_task_budget, task_partitions, to_database
from t2g_assets.resources import ComputeDevice, T2GSettings
from t2g_assets.versions import CODE_VERSION

DB_INPUT = {"partition_mapping": to_database}


def partition(context: AssetExecutionContext) -> tuple[str, str, str, str]:
    """(database, task, budget, "task@budget") of the running partition."""
    keys = context.partition_key.keys_by_dimension
    task, budget = split_task_budget(keys["task_budget"])
    return keys["database"], task, budget, keys["task_budget"]


def load_task(context: AssetExecutionContext, settings: T2GSettings, raw_tables: dict):
    """The task's labels; a clear error when this database has no such task."""
    from t2g_lib.task_data import load_task_data

    database, task, _, _ = partition(context)
    if task not in raw_tables["tasks"]:
        raise ValueError(
            f"database {database!r} has no task {task!r} (its tasks: {', '.join(raw_tables['tasks']) or 'none'})"
        )
    return load_task_data(settings.dataset_path(database), task)


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="distillation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
)
def sbm_structure(
    context: AssetExecutionContext,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining: dict,
) -> Output[dict]:
    """Synthetic nodes per table allocated to cluster blocks, FK edges drawn from the SBM."""
    from t2g_lib.pretrain import PretrainResult
    from t2g_lib.sbm import budget_per_table, generate_sbm, sbm_report
    from t2g_lib.task_data import parse_budget

    database, _, budget, task_budget = partition(context)
    task = load_task(context, settings, raw_tables)
    db = load_snapshot(duckdb, database, raw_tables)
    pre = PretrainResult.load(cluster_pretraining["path"])
    sizes = {name: len(t.df) for name, t in db.table_dict.items()}
    spec = parse_budget(budget)
    counts = {t: min(spec["count"], n) for t, n in sizes.items()} if "count" in spec else None
    budgets = budget_per_table(sizes, ratio=spec.get("ratio"), counts=counts)
    graph = generate_sbm(db, pre.pseudo_labels, pre.centroids, budgets, task.entity_table, settings.seed)
    out = settings.stage_dir(database, "sbm_structure", task_budget)
    graph.save(out)
    report = sbm_report(graph, db, pre.pseudo_labels)
    md = "| table | real rows | synthetic nodes |\n|---|---:|---:|\n" + "\n".join(
        f"| {t} | {sizes[t]} | {budgets[t]} |" for t in sizes
    )
    rel_md = "| child.fkey -> parent | max abs diff of linking matrix | mean abs diff |\n|---|---:|---:|\n" + "\n".join(
        f"| {r['child']}.{r['fkey_col']} -> {r['parent']} | {r['max_abs_diff']:.3f} | {r['mean_abs_diff']:.3f} |"
        for r in report["relations"]
    )
    return Output(
        {"path": str(out), "budgets": budgets},
        metadata={
            "budget": MetadataValue.md(md),
            "linking_matrices": MetadataValue.md(rel_md),
            "synthetic_nodes": sum(budgets.values()),
            "real_rows": sum(sizes.values()),
        },
    )


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="distillation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
    kinds={"pytorch"},
)
def distilled_features(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining: dict,
    sbm_structure: dict,
) -> Output[dict]:
    """KRR-distilled synthetic features and soft labels (closed-form ridge, one optimizer)."""
    from t2g_lib.graph import SyntheticGraph
    from t2g_lib.krr import KRRConfig, distill_features
    from t2g_lib.pretrain import PretrainResult

    database, _, _, task_budget = partition(context)
    task = load_task(context, settings, raw_tables)
    db = load_snapshot(duckdb, database, raw_tables)
    pre = PretrainResult.load(cluster_pretraining["path"])
    start = time.perf_counter()
    graph, history = distill_features(
        SyntheticGraph.load(sbm_structure["path"]),
        pre.embeddings,
        pre.pseudo_labels,
        pre.centroids,
        db,
        task.train,
        task.val,
        task.entity_table,
        task.entity_col,
        task.time_col,
        task.target_col,
        task.task_type,
        KRRConfig(seed=settings.seed),
        device=device.torch_device(),
        log=context.log.info,
    )
    seconds = time.perf_counter() - start
    out = settings.stage_dir(database, "distilled_features", task_budget)
    graph.save(out)
    return Output(
        {"path": str(out), "seconds": seconds, "history": history},
        metadata={
            "distill_seconds": seconds,
            "best_step": history["best_step"],
            "val_score_start": history["start_score"],
            "val_score_best": history["best_score"],
            "payload_bytes": graph.nbytes(),
        },
    )


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="evaluation",
    ins={"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)},
    check_specs=[
        AssetCheckSpec("no_temporal_leakage", asset="evaluation_scores", blocking=True),
        AssetCheckSpec("utility_retention", asset="evaluation_scores", blocking=True),
    ],
    kinds={"pytorch"},
)
def evaluation_scores(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining: dict,
    sbm_structure: dict,
    distilled_features: dict,
):
    """GNNs trained on the distilled graph vs the full database and coreset baselines.

    Two blocking checks gate publication: no training label saw a row from after its
    timestamp, and T2G keeps at least ``utility_floor`` of the full-data utility.
    """
    from t2g_lib.evaluate import scores_markdown
    from t2g_lib.protocol import EvalSetup, run_evaluation
    from t2g_lib.plots import plot_metric_vs_compression

    database, _, budget, task_budget = partition(context)
    task = load_task(context, settings, raw_tables)
    db = load_snapshot(duckdb, database, raw_tables)
    setup = EvalSetup(
        db=db,
        task=task,
        pretrain_path=cluster_pretraining["path"],
        sbm_path=sbm_structure["path"],
        distilled_path=distilled_features["path"],
        distill_seconds=distilled_features["seconds"],
        source_dir=settings.dataset_path(database),
        models=list(settings.eval_models),
        epochs=settings.eval_epochs,
        epochs_distilled=settings.eval_epochs_distilled,
        seed=settings.seed,
        device=device.torch_device(),
        log=context.log.info,
        full_cache_dir=settings.stage_dir(database, "full_training", task.name),
    )
    report = run_evaluation(setup)
    out = settings.stage_dir(database, "evaluation_scores", task_budget)
    report.scores.to_csv(out / "scores.csv", index=False)
    metadata = {
        "scores": MetadataValue.md(scores_markdown(report.scores)),
        "t2g_retention_best_model": report.t2g_retention,
    }
    if len(report.scores):
        png = plot_metric_vs_compression(report.scores)
        (out / "scores.png").write_bytes(png)
        metadata["plot"] = MetadataValue.md(f"![metric vs compression](data:image/png;base64,{_b64(png)})")
        metadata["plot_path"] = MetadataValue.path(str(out / "scores.png"))
    yield Output({"path": str(out), "scores": report.scores.to_dict(orient="records")}, metadata=metadata)
    yield leakage_check(report.leakage)
    yield utility_check(report.t2g_retention, settings.utility_floor)


def leakage_check(leakage: dict) -> AssetCheckResult:
    """``no_temporal_leakage``: fails when a sampled row postdates its label, naming both."""
    worst = int(leakage["max_leak_seconds"])
    if leakage["passed"]:
        description = "no sampled row is later than its label's timestamp"
    else:
        e = leakage["examples"][0] if leakage["examples"] else {}
        description = f"a sampled row is {worst} s later than its label's timestamp"
        if "table" in e:
            description += (
                f": table {e['table']!r}, row {e['row']} ({e['row_time']}) was sampled for the "
                f"{e['split']} label of entity row {e['seed_row']} at {e['label_time']}"
            )
    return AssetCheckResult(
        check_name="no_temporal_leakage",
        passed=bool(leakage["passed"]),
        description=description,
        metadata={"max_leak_seconds": worst, "examples": MetadataValue.json(leakage["examples"])},
    )


def utility_check(retention: float, floor: float | None) -> AssetCheckResult:
    """``utility_retention``: T2G keeps at least ``floor`` of full-data utility (no floor: off)."""
    if floor is None:
        return AssetCheckResult(
            check_name="utility_retention",
            passed=True,
            description=f"no utility floor set (gate off); T2G keeps {retention:.3f} of full-data utility",
            metadata={"retention": float(retention)},
        )
    return AssetCheckResult(
        check_name="utility_retention",
        passed=bool(retention >= floor),
        description=f"T2G keeps {retention:.3f} of full-data utility (floor {floor})",
        metadata={"retention": float(retention), "floor": float(floor)},
    )


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="evaluation",
    ins={"raw_tables": AssetIn(**DB_INPUT)},
    deps=["evaluation_scores"],
    kinds={"duckdb", "parquet"},
)
def distilled_database(
    context: AssetExecutionContext,
    settings: T2GSettings,
    duckdb: DuckDBResource,
    raw_tables: dict,
    distilled_features: dict,
) -> Output[dict]:
    """The published distilled database: RelBench folder, DuckDB schema, PyG HeteroData file.

    Runs only after ``evaluation_scores``' blocking leakage and utility checks passed.
    """
    from relbench.manifest import DatasetManifest, TaskManifest

    from t2g_lib.data.duck import write_tables
    from t2g_lib.export import export_distilled
    from t2g_lib.graph import SyntheticGraph

    database, task_name, _, task_budget = partition(context)
    load_task(context, settings, raw_tables)
    manifest = DatasetManifest.from_dict(raw_tables["manifest"])
    task_manifest = TaskManifest.load(settings.dataset_path(database) / "tasks" / task_name / "manifest.yaml")
    out = settings.stage_dir(database, "distilled_database", task_budget)
    info = export_distilled(
        SyntheticGraph.load(distilled_features["path"]),
        out,
        name=f"{database}-distilled-{task_budget}",
        task_manifest=task_manifest,
        source_dir=settings.dataset_path(database),
        val_timestamp=manifest.val_timestamp,
        test_timestamp=manifest.test_timestamp,
    )
    from t2g_lib.data.format import read_tables

    with duckdb.get_connection() as conn:
        write_tables(conn, f"{database}__distilled__{task_budget}", read_tables(info.relbench_dir))
    return Output(
        {"path": str(out), "relbench_dir": str(info.relbench_dir)},
        metadata={
            "relbench_folder": MetadataValue.path(str(info.relbench_dir)),
            "distilled_bytes": info.distilled_bytes,
            "source_bytes": info.source_bytes,
            "compression_ratio": float(info.compression_ratio),
            "nodes": MetadataValue.json(info.nodes),
        },
    )
