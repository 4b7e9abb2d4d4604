"""Database-level assets: computed once per database and shared by all of its tasks.

The method is imported inside each asset, never at module level: the code server loads
these definitions on every start, and the method's imports (torch, PyG) take seconds.
"""

from collections.abc import Iterable, Mapping

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

from t2g_assets.configs import PretrainParams, pretrain_config
from t2g_assets.metadata import frame_table
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


def load_snapshot(
    duckdb: DuckDBResource, database: str, raw: dict, parse_time_cols: bool = True,
    columns: Mapping[str, Iterable[str]] | None = None,
):
    """The snapshot of a database as ``raw_tables`` stored it in DuckDB (text times parsed);
    with ``columns``, only each table's keys, time and the columns named (``read_database``)."""
    from relbench.manifest import DatasetManifest

    from t2g_lib.data.duck import read_database

    with duckdb.get_connection() as conn:
        manifest = DatasetManifest.from_dict(raw["manifest"])
        return read_database(conn, database, manifest, parse_time_cols, columns)


def load_tasks(duckdb: DuckDBResource, database: str, raw: dict) -> dict[str, tuple[dict, dict]]:
    """Every task of the snapshot: its manifest and its label tables, as ``raw_tables`` stored them."""
    from t2g_lib.data.duck import read_labels
    from t2g_lib.task_data import SPLITS

    with duckdb.get_connection() as conn:
        return {name: (tm, read_labels(conn, database, name, list(SPLITS))) for name, tm in raw["tasks"].items()}


@asset(
    code_version=CODE_VERSION,
    partitions_def=database_partitions,
    deps=[dataset_source],
    group_name="database",
    kinds={"duckdb"},
)
def raw_tables(context: AssetExecutionContext, settings: T2GSettings, duckdb: DuckDBResource) -> Output[dict]:
    """The dataset folder's tables and task labels loaded into DuckDB: the snapshot every
    later stage reads (one schema for the tables, one for the labels)."""
    from t2g_lib.data.duck import schema_name
    from t2g_lib.data.snapshot import take_snapshot

    database = context.partition_key
    with duckdb.get_connection() as conn:
        snap = take_snapshot(conn, database, settings.dataset_path(database))
    total = int(snap.sizes["rows"].sum())
    context.log.info(f"loaded {len(snap.sizes)} tables, {total} rows into {schema_name(database)}")
    return Output(
        snap.summary(),
        metadata={
            "duckdb_schema": schema_name(database),
            "source_fingerprint": snap.fingerprint,
            "total_rows": total,
            "num_tables": len(snap.sizes),
            "tables": frame_table(snap.sizes),
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
    """``DatabaseSchema``: semantic type of every column and the key graph, checked by Great
    Expectations suites.

    The checks are blocking: a database with duplicate keys, dangling foreign keys above the
    bound, unparsable times, empty tables, mixed-type columns or labels pointing nowhere stops
    here, and nothing downstream trains on it.
    """
    from t2g_lib.data.format import parse_time_columns
    from t2g_lib.schema import infer_schema, schema_markdown, schema_mermaid, text_plan_markdown
    from t2g_lib.task_data import check_task_labels
    from t2g_lib.validation import dangling_key_warnings, validate_database

    database = context.partition_key
    db = load_snapshot(duckdb, database, raw_tables, parse_time_cols=False)
    results = validate_database(db, max_dangling_fraction=settings.max_dangling_fraction)
    for warning in dangling_key_warnings(results):
        context.log.warning(warning)
    schema = infer_schema(parse_time_columns(db))
    results.append(check_task_labels(load_tasks(duckdb, database, raw_tables), db))
    yield Output(
        schema,
        metadata={
            "schema": MetadataValue.md(schema_markdown(schema)),
            "diagram": MetadataValue.md(f"```mermaid\n{schema_mermaid(schema)}\n```"),
            "text_encoders": MetadataValue.md(text_plan_markdown(schema, settings.text_model_budget)),
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
    validated_schema,
) -> Output:
    """``TokenizedDatabase``: modality-specific column tokens (numerical, categorical, text,
    timestamp) per table."""
    from relbench.base import Database
    from relbench.manifest import DatasetManifest

    from t2g_lib.data.duck import TablesOnDemand
    from t2g_lib.task_data import column_types, hidden_columns
    from t2g_lib.tokens import tokenize_database, tokens_markdown

    hidden = hidden_columns(raw_tables["tasks"])
    manifest = DatasetManifest.from_dict(raw_tables["manifest"])
    # One table's rows in memory at a time (tokenize_database visits them in turn).
    db = Database(TablesOnDemand(duckdb.get_connection, context.partition_key, manifest, hidden))
    tokens = tokenize_database(
        db,
        column_types(validated_schema),
        cache_dir=settings.text_cache_dir,
        device=device.torch_device(),
        progress=context.log.info,
        text_model_budget=settings.text_model_budget,
    )
    return Output(
        tokens,
        metadata={
            "tokens": MetadataValue.md(tokens_markdown(tokens)),
            "hidden_columns": MetadataValue.json(sorted(list(h) for h in hidden)),
        },
    )


@asset(partitions_def=database_partitions, group_name="database", kinds={"pytorch"}, code_version=CODE_VERSION)
def cluster_pretraining(
    context: AssetExecutionContext,
    config: PretrainParams,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    column_tokens,
) -> Output:
    """``PretrainResult``: row encoder + heterogeneous GNN trained DeepCluster-style; yields
    pseudo-labels, centroids and row embeddings."""
    from t2g_lib.pretrain import clusters_markdown, pretrain_clusters

    db = load_snapshot(duckdb, context.partition_key, raw_tables, columns={})
    result = pretrain_clusters(
        db, column_tokens, pretrain_config(config, settings.seed), device=device.torch_device(), log=context.log.info
    )
    return Output(result, metadata={"clusters": MetadataValue.md(clusters_markdown(result))})
