"""The whole chain under real Dagster runs, on the shop fixture: database then task level."""

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance
from relbench.manifest import TableSpec

from dagster_env import Env, check_results
from shop import SPECS, make_shop
from t2g_lib.data.format import write_dataset, read_tables
from t2g_lib.krr_config import KRRConfig
from t2g_assets.partitions import task_partition_key



@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    make_shop(tmp / "data" / "shop")
    e = Env(tmp / "data", tmp / "storage", DagsterInstance.ephemeral())
    e.register("shop", ["churn@0.1", "churn@n6"])
    assert e.run(e.stages("database"), "shop", raise_on_error=True).success
    return e


def test_distillation_chain_two_budgets_coexist(env):
    sizes = {}
    for budget in ("0.1", "n6"):
        key = task_partition_key("shop", "churn", budget)
        result = env.run(env.stages("distillation"), key, raise_on_error=True)
        # the SBM structure is sized by the budget; the published graph may be the judge's coreset
        sizes[budget] = result.output_for_node("sbm_structure").num_nodes()
        graph = result.output_for_node("distilled_features").graph
        # the train examples carry the teacher's out-of-fold labels, one per train label
        teacher = result.output_for_node("teacher_labels")
        assert result.output_for_node("distilled_features").history["labels"] == "teacher"
        assert teacher.soft is not None and ((teacher.soft >= 0) & (teacher.soft <= 1)).all()
        assert graph.nbytes() <= result.output_for_node("sbm_structure").nbytes() + 4 * sum(sizes[budget].values())
        for rel in graph.schema.relations:
            parents = graph.parents[rel.index]
            assert len(parents) == graph.num_nodes()[rel.child]
            assert ((parents >= 0) & (parents < graph.num_nodes()[rel.parent])).all()
    assert sizes["n6"]["order"] == 6 and sizes["0.1"]["order"] > 6


def materialized(result) -> set[str]:
    return {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}


def test_evaluation_that_clears_the_utility_gate_publishes(env):
    # as many steps as the GNN judge trains (KRRConfig.gnn_steps), so its model is reused
    lenient = type(env)(env.data_dir, env.storage_dir, env.instance,
                        settings={"utility_floor": -1e9, "eval_steps_distilled": KRRConfig.gnn_steps})
    key = task_partition_key("shop", "churn", "0.1")
    result = lenient.run(env.stages("evaluation", "publication"), key, raise_on_error=True)
    checks = check_results(result, "evaluation_scores")
    assert checks == {"no_temporal_leakage": True, "utility_retention": True}
    assert {"evaluation_scores", "distilled_database"} <= materialized(result)
    assert not {"ablation_features", "baseline_graphs", "comparison_scores"} & materialized(result)
    scores = result.output_for_node("evaluation_scores")  # the gate: T2G against the full data only
    assert set(scores["method"]) == {"full", "t2g"}
    assert "gbm" in set(scores["model"])
    mat = [m for m in result.get_asset_materialization_events() if m.asset_key == AssetKey("evaluation_scores")][0]
    table = mat.materialization.metadata["scores"]  # a sortable table in the UI, one row per method
    assert len(table.records) == len(scores)
    assert {c.name: c.type for c in table.schema.columns}["value"] == "float"
    defs = lenient.defs()
    published = defs.load_asset_value("distilled_database", instance=env.instance, partition_key=key)
    assert published.folder == env.storage_dir / "shop" / "tasks" / "churn@0.1" / "distilled_database"
    assert (published.folder / "relbench" / "manifest.yaml").exists()
    distilled = defs.load_asset_value("distilled_features", instance=env.instance, partition_key=key)
    np.testing.assert_array_equal(published.graph.y, distilled.graph.y)
    # the stored graph is the one the judge trained on, bit for bit, and its model is reused
    assert distilled.judged is not None and distilled.judged.fingerprint == distilled.graph.fingerprint()
    t2g = scores[(scores["model"] == "sage") & (scores["method"] == "t2g")].iloc[0]
    assert t2g["val_value"] == distilled.judged.result.val_metric
    assert t2g["train_seconds"] == distilled.judged.result.seconds


def test_utility_gate_below_floor_stops_publication(env):
    strict = type(env)(env.data_dir, env.storage_dir, env.instance, settings={"utility_floor": 1e9})
    key = task_partition_key("shop", "churn", "n6")
    result = strict.run(env.stages("evaluation", "publication"), key)
    assert not result.success
    evaluation = [e for e in result.get_asset_check_evaluations() if e.check_name == "utility_retention"][0]
    assert evaluation.passed is False and "floor 1000000000.0" in evaluation.description
    assert "evaluation_scores" in materialized(result) and "distilled_database" not in materialized(result)
    assert env.instance.get_run_by_id(result.run_id).is_failure


def test_the_comparison_runs_when_the_gate_refuses_and_scores_t2g_as_the_gate_did(env):
    """comparison_scores does not wait on the gate: a refused distillation still shows how the
    ablation and the baselines did, with T2G's rows those of evaluation_scores."""
    strict = type(env)(env.data_dir, env.storage_dir, env.instance,
                       settings={"utility_floor": 1e9, "eval_steps_distilled": KRRConfig.gnn_steps})
    key = task_partition_key("shop", "churn", "n6")
    result = strict.run(env.stages("evaluation", "comparison", "publication"), key)
    assert not result.success and "distilled_database" not in materialized(result)
    assert {"ablation_features", "baseline_graphs", "comparison_scores"} <= materialized(result)
    compared = result.output_for_node("comparison_scores")
    assert {"full", "t2g", "t2g_no_pseudo", "centroids", "random_subgraphs", "kcenter_subgraphs",
            "herding_subgraphs", "herding_histories"} <= set(compared["method"])
    gate = result.output_for_node("evaluation_scores").set_index(["model", "method"])
    compared = compared.set_index(["model", "method"])
    for row in gate.index:
        for column in ("value", "val_value", "storage_bytes", "utility_retention"):
            assert compared.at[row, column] == gate.at[row, column], (row, column)


def test_a_label_older_than_its_entity_fails_the_leakage_gate(tmp_path):
    """A task whose label predates its entity's own row (a common bug of label SQL) leaks
    the future: the blocking check fails naming the label and the row, nothing is published."""
    data = tmp_path / "data"
    make_shop(data / "shop")
    tables = {t: df for t, df in read_tables(data / "shop").items() if t in SPECS}
    tables["customers"]["joined"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(tables["customers"].index, "h")
    specs = {**SPECS, "customers": TableSpec(pkey="customer_id", time_col="joined")}
    write_dataset(data / "shop", "shop", tables, specs, "2024-09-01", "2024-10-15")
    train_file = data / "shop" / "tasks" / "churn" / "train.parquet"
    train = pd.read_parquet(train_file)
    train.loc[0, "timestamp"] = pd.Timestamp("2022-06-01")  # before every customer joined
    train.to_parquet(train_file, index=False)
    entity = int(train.loc[0, "customer_id"])

    leaky = Env(data, tmp_path / "storage", DagsterInstance.ephemeral())
    leaky.register("shop", ["churn@n6"])
    assert leaky.run(leaky.stages("database"), "shop", raise_on_error=True).success
    result = leaky.run(leaky.stages("distillation", "evaluation", "publication"), task_partition_key("shop", "churn", "n6"))
    assert not result.success
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_temporal_leakage"][0]
    joined = tables["customers"].loc[entity, "joined"]
    seconds = int((joined - pd.Timestamp("2022-06-01")).total_seconds())
    assert check.passed is False and check.metadata["max_leak_seconds"].value == seconds
    worst = check.metadata["examples"].value[0]
    assert worst == {
        "split": "train", "table": "customers", "row": entity, "row_time": str(joined), "seed_row": entity,
        "label_time": "2022-06-01 00:00:00", "leak_seconds": seconds,
    }
    assert f"{seconds} s later" in check.description and "'customers'" in check.description
    assert "evaluation_scores" in materialized(result) and "distilled_database" not in materialized(result)


def test_task_stages_read_the_labels_snapshotted_with_the_tables(env):
    """Labels changed in the folder after raw_tables do not leak into a task-level run:
    every stage reads the snapshot, so tables and labels are of one moment."""
    train_file = env.data_dir / "shop" / "tasks" / "churn" / "train.parquet"
    train_file.write_bytes(b"overwritten after the snapshot")  # reading the folder now would fail
    result = env.run(env.stages("distillation"), task_partition_key("shop", "churn", "n6"))
    assert result.success


def test_a_partition_of_a_missing_task_fails_naming_the_task_and_the_tasks_there(env):
    """From the UI a task partition can be added by hand: its first stage fails with the task's name."""
    env.register("shop", ["nope@n6"])
    result = env.run(env.stages("distillation"), task_partition_key("shop", "nope", "n6"))
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures and {e.step_key for e in failures} <= {"teacher_labels", "sbm_structure"}
    for e in failures:
        assert "database 'shop' has no task 'nope' (its tasks: churn)" in e.step_failure_data.error.cause.message
