"""The database-level assets under real Dagster runs: raw_tables and validated_schema."""

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance

from shop import make_shop, overwrite_table, shop_tables
from dagster_env import Env, check_results


@pytest.fixture()
def env(tmp_path):
    make_shop(tmp_path / "data" / "shop")
    e = Env(tmp_path / "data", tmp_path / "storage", DagsterInstance.ephemeral())
    e.register("shop")
    return e


def test_raw_tables_and_validated_schema_materialize(env):
    result = env.run(["raw_tables", "validated_schema"], "shop", raise_on_error=True)
    assert result.success
    checks = check_results(result, "validated_schema")
    assert checks and all(checks.values()), checks
    mat = [m for m in result.get_asset_materialization_events() if m.asset_key == AssetKey("raw_tables")][0]
    assert mat.materialization.metadata["total_rows"].value == sum(len(df) for df in shop_tables().values())
    con = duckdb.connect(str(env.storage_dir / "t2g.duckdb"), read_only=True)
    n = con.execute('SELECT count(*) FROM "db_shop"."order"').fetchone()[0]
    assert n == len(shop_tables()["order"])
    schema = result.output_for_node("validated_schema")
    types = {c.name: c.stype.value for c in schema.tables["order"].columns}
    assert types["customer_id"] == "key" and types["placed"] == "timestamp"


def test_duplicate_primary_key_blocks_downstream_and_keeps_earlier_state(env):
    assert env.run(["raw_tables", "validated_schema"], "shop").success
    bad = shop_tables()["customers"]
    bad.loc[5, "customer_id"] = 4
    overwrite_table(env.data_dir / "shop", "customers", bad)
    result = env.run(["raw_tables", "validated_schema", "column_tokens"], "shop")
    assert not result.success
    checks = check_results(result, "validated_schema")
    assert checks["primary_keys"] is False
    evaluation = [e for e in result.get_asset_check_evaluations() if e.check_name == "primary_keys"][0]
    assert "customers" in evaluation.description and "customer_id" in evaluation.description
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert "column_tokens" not in materialized  # the blocking check stopped it
    # A corrected source re-runs cleanly.
    overwrite_table(env.data_dir / "shop", "customers", shop_tables()["customers"])
    assert env.run(["raw_tables", "validated_schema"], "shop").success


def test_dangling_foreign_key_names_table_column_and_rows(env):
    order = shop_tables()["order"]
    order.loc[order.index[::8], "customer_id"] = 9999  # 12.5% dangling, above the 5% bound
    overwrite_table(env.data_dir / "shop", "order", order)
    result = env.run(["raw_tables", "validated_schema"], "shop")
    evaluation = [e for e in result.get_asset_check_evaluations() if e.check_name == "foreign_keys"][0]
    assert evaluation.passed is False
    assert "order" in evaluation.description and "customer_id" in evaluation.description
    assert "9999" in str(evaluation.metadata["failures"].value)


@pytest.mark.parametrize("source", ["cli", None])
def test_cli_runs_hold_no_stage_values_in_memory(env, source):
    """``execute_in_process`` keeps every stage's value in memory for its result; a run of
    ``t2g distill`` (tagged ``t2g/source: cli``) drops each one once it is stored, so a stage
    never carries the earlier ones' values. Other in-process runs keep theirs."""
    from dagster import DagsterInvariantViolationError

    job = env.defs().resolve_job_def("distill_database")
    tags = {"t2g/source": source} if source else {}
    result = job.execute_in_process(instance=env.instance, partition_key="shop", tags=tags,
                                    asset_selection=[AssetKey("raw_tables"), AssetKey("validated_schema")])
    assert result.success
    if source == "cli":
        with pytest.raises(DagsterInvariantViolationError):
            result.output_for_node("validated_schema")
    else:
        assert result.output_for_node("validated_schema").tables
