"""The whole chain under real Dagster runs, on the shop fixture: database then task level."""

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from dagster_env import Env, check_results
from shop import make_shop
from t2g_assets.partitions import task_partition_key
from t2g_lib.graph import SyntheticGraph

DB_STAGES = ["raw_tables", "validated_schema", "column_tokens", "cluster_pretraining"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    make_shop(tmp / "data" / "shop")
    e = Env(tmp / "data", tmp / "storage", DagsterInstance.ephemeral())
    e.register("shop", ["churn@0.1", "churn@n6"])
    assert e.run(DB_STAGES, "shop", raise_on_error=True).success
    return e


def test_distillation_chain_two_budgets_coexist(env):
    sizes = {}
    for budget in ("0.1", "n6"):
        key = task_partition_key("shop", "churn", budget)
        result = env.run(["sbm_structure", "distilled_features"], key, raise_on_error=True)
        graph = SyntheticGraph.load(result.output_for_node("distilled_features")["path"])
        sizes[budget] = graph.num_nodes()
        for rel in graph.schema.relations:
            parents = graph.parents[rel.index]
            assert len(parents) == graph.num_nodes()[rel.child]
            assert ((parents >= 0) & (parents < graph.num_nodes()[rel.parent])).all()
    assert sizes["n6"]["order"] == 6 and sizes["0.1"]["order"] > 6


def test_evaluation_gates_publication(env):
    env.instance  # same instance: upstream outputs are read from the IO manager
    key = task_partition_key("shop", "churn", "0.1")
    result = env.run(["evaluation_scores", "distilled_database"], key)
    checks = check_results(result, "evaluation_scores")
    assert set(checks) == {"no_temporal_leakage", "utility_retention"}
    assert checks["no_temporal_leakage"] is True
    mats = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert "evaluation_scores" in mats
    scores = result.output_for_node("evaluation_scores")["scores"]
    methods = {row["method"] for row in scores}
    assert {"full", "t2g", "t2g_no_pseudo", "centroids", "random", "kcenter", "herding"} <= methods
    # Published only when the utility gate passed; otherwise the blocking check stopped it.
    assert ("distilled_database" in mats) == checks["utility_retention"]


def test_utility_gate_below_floor_stops_publication(env):
    strict = type(env)(env.data_dir, env.storage_dir, env.instance, settings={"utility_floor": 1.5})
    key = task_partition_key("shop", "churn", "n6")
    result = strict.run(["evaluation_scores", "distilled_database"], key)
    assert not result.success
    evaluation = [e for e in result.get_asset_check_evaluations() if e.check_name == "utility_retention"][0]
    assert evaluation.passed is False and "floor 1.5" in evaluation.description
    mats = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert "evaluation_scores" in mats and "distilled_database" not in mats
    run = env.instance.get_run_by_id(result.run_id)
    assert run.is_failure
