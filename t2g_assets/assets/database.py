"""Database-level assets: computed once per database and shared by all of its tasks."""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)
from dagster_duckdb import DuckDBResource

from t2g_assets.partitions import database_partitions
from t2g_assets.resources import ComputeDevice, T2GSettings
from t2g_assets.versions import CODE_VERSION
from t2g_assets.assets.source import dataset_source

SCHEMA_CHECKS = (
    "primary_keys",
    "foreign_keys",
    "time_columns",
    "not_empty",
    "column_types",
    "task_labels",
)


def load_snapshot(duckdb: DuckDBResource, database: str, raw: dict, parse_time_cols: bool = True):
    """The snapshot of a database as ``raw_tables`` stored it in DuckDB (text times parsed)."""
    from relbench.manifest import DatasetManifest

    from t2g_lib.data.duck import read_database

    with duckdb.get_connection() as conn:
        return read_database(conn, database, DatasetManifest.from_dict(raw["manifest"]), parse_time_cols)


@asset(
    code_version=CODE_VERSION,
    partitions_def=database_partitions,
    deps=[dataset_source],
    group_name="database",
    kinds={"duckdb"},
)
def raw_tables(context: AssetExecutionContext, settings: T2GSettings, duckdb: DuckDBResource) -> Output[dict]:
    """The dataset folder's tables loaded into DuckDB, one schema per database."""
    from t2g_lib.data.duck import schema_name, write_tables
    from t2g_lib.data.format import read_tables, validate_dataset_folder
    from t2g_lib.data.registry import fingerprint_dataset, list_tasks

    database = context.partition_key
    path = settings.dataset_path(database)
    manifest = validate_dataset_folder(path, check_contents=False)
    tables = read_tables(path)
    with duckdb.get_connection() as conn:
        write_tables(conn, database, tables)
    fingerprint = fingerprint_dataset(path)
    rows = {name: len(df) for name, df in tables.items()}
    context.log.info(f"loaded {len(tables)} tables, {sum(rows.values())} rows into {schema_name(database)}")
    table_md = "| table | rows | columns |\n|---|---:|---:|\n" + "\n".join(
        f"| {name} | {len(df)} | {df.shape[1]} |" for name, df in tables.items()
    )
    return Output(
        {"manifest": manifest.to_dict(), "fingerprint": fingerprint, "tasks": list_tasks(path), "path": str(path)},
        metadata={
            "duckdb_schema": schema_name(database),
            "source_fingerprint": fingerprint,
            "total_rows": sum(rows.values()),
            "num_tables": len(tables),
            "tables": MetadataValue.md(table_md),
        },
        data_version=None,
    )


@asset(
    code_version=CODE_VERSION,
    partitions_def=database_partitions,
    group_name="database",
    check_specs=[AssetCheckSpec(name, asset="validated_schema", blocking=True) for name in SCHEMA_CHECKS],
)
def validated_schema(context: AssetExecutionContext, settings: T2GSettings, duckdb: DuckDBResource, raw_tables: dict):
    """Semantic type of every column and the key graph, checked by Great Expectations suites.

    The checks are blocking: a database with duplicate keys, dangling foreign keys above the
    bound, unparsable times, empty tables, mixed-type columns or labels pointing nowhere stops
    here, and nothing downstream trains on it.
    """
    from t2g_lib.data.format import parse_time_columns
    from t2g_lib.schema import infer_schema, schema_markdown, schema_mermaid
    from t2g_lib.task_data import check_task_labels
    from t2g_lib.validation import dangling_key_warnings, validate_database

    database = context.partition_key
    db = load_snapshot(duckdb, database, raw_tables, parse_time_cols=False)
    results = validate_database(db, max_dangling_fraction=settings.max_dangling_fraction)
    for warning in dangling_key_warnings(results):
        context.log.warning(warning)
    schema = infer_schema(parse_time_columns(db))
    results.append(check_task_labels(settings.dataset_path(database), db))
    yield Output(
        schema.to_dict(),
        metadata={
            "schema": MetadataValue.md(schema_markdown(schema)),
            "diagram": MetadataValue.md(f"```mermaid\n{schema_mermaid(schema)}\n```"),
            "num_columns": sum(len(t.columns) for t in schema.tables.values()),
        },
    )
    for result in results:
        yield AssetCheckResult(
            check_name=result.check,
            passed=result.passed,
            severity=AssetCheckSeverity.ERROR if result.severity == "ERROR" else AssetCheckSeverity.WARN,
            description=result.message,
            metadata={"failures": MetadataValue.json(result.failures), "details": MetadataValue.json(result.metadata)},
        )


@asset(partitions_def=database_partitions, group_name="database", kinds={"pytorch"}, code_version=CODE_VERSION)
def column_tokens(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    validated_schema: dict,
) -> Output[dict]:
    """Modality-specific column tokens (numerical, categorical, text, timestamp) per table."""
    from relbench.base.dataset import drop_columns

    from t2g_lib.schema import DatabaseSchema
    from t2g_lib.task_data import column_types, hidden_columns
    from t2g_lib.tokens import tokenize_database

    database = context.partition_key
    hidden = hidden_columns(settings.dataset_path(database))
    db = drop_columns(load_snapshot(duckdb, database, raw_tables), sorted(hidden))
    schema = DatabaseSchema.from_dict(validated_schema)
    out = settings.stage_dir(database, "column_tokens")
    tokens = tokenize_database(
        db,
        column_types(schema),
        cache_dir=settings.stage_dir("_shared", "text_cache"),
        device=device.torch_device(),
        progress=context.log.info,
    )
    tokens.save(out)
    summary = tokens.summary()
    stypes = ("numerical", "categorical", "text", "timestamp")
    md = "| table | rows | " + " | ".join(stypes) + " | distinct texts | embedded now |\n|---|" + "---:|" * 7 + "\n"
    md += "\n".join(
        f"| {t} | {s['n_rows']} | " + " | ".join(str(len(s["columns"].get(k, []))) for k in stypes)
        + f" | {s['n_text_distinct']} | {s['n_embedded_now']} |"
        for t, s in summary.items()
    )
    return Output(
        {"path": str(out)},
        metadata={
            "tokens": MetadataValue.md(md),
            "hidden_columns": MetadataValue.json(sorted(list(h) for h in hidden)),
            "path": str(out),
        },
    )


@asset(partitions_def=database_partitions, group_name="database", kinds={"pytorch"}, code_version=CODE_VERSION)
def cluster_pretraining(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    column_tokens: dict,
) -> Output[dict]:
    """Row encoder + heterogeneous GNN trained DeepCluster-style; yields pseudo-labels."""
    import numpy as np

    from t2g_lib.pretrain import PretrainConfig, pretrain_clusters
    from t2g_lib.tokens import TokenizedDatabase

    database = context.partition_key
    db = load_snapshot(duckdb, database, raw_tables)
    tokens = TokenizedDatabase.load(column_tokens["path"])
    result = pretrain_clusters(
        db, tokens, PretrainConfig(seed=settings.seed), device=device.torch_device(), log=context.log.info
    )
    out = settings.stage_dir(database, "cluster_pretraining")
    result.save(out)
    md = "| table | rows | clusters | largest cluster share |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {t} | {len(result.pseudo_labels[t])} | {len(result.centroids[t])} "
        f"| {np.bincount(result.pseudo_labels[t]).max() / max(len(result.pseudo_labels[t]), 1):.3f} |"
        for t in result.pseudo_labels
    )
    return Output({"path": str(out)}, metadata={"clusters": MetadataValue.md(md), "path": str(out)})
