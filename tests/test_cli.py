"""The ``t2g`` command: distill a fixture database end to end through Dagster."""

import pytest
from typer.testing import CliRunner

from shop import make_shop, overwrite_table, quick_knobs, shop_tables
from t2g_cli.main import app


@pytest.fixture()
def quick(tmp_path) -> list[str]:
    return quick_knobs(tmp_path)  # these tests are about the command: a short KRR distillation


def test_distill_prints_where_and_how_much_smaller(tmp_path, monkeypatch, quick):
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    result = CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "0.2", "--out", str(tmp_path / "storage"), *quick])
    assert result.exit_code == 0, result.output
    assert "distilled database:" in result.output and "x smaller" in result.output
    assert "graph kept: " in result.output and "labelled examples" in result.output
    # Progress and the stages' INFO lines, not Dagster's DEBUG events.
    assert "t2g:" in result.output and "[cluster_pretraining]" in result.output
    assert "DEBUG" not in result.output and "STEP_START" not in result.output
    folder = tmp_path / "storage" / "shop" / "tasks" / "churn@0.2" / "distilled_database" / "relbench"
    assert (folder / "manifest.yaml").exists()


def test_unknown_task_fails_with_its_name(tmp_path, monkeypatch):
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    result = CliRunner().invoke(app, ["distill", "shop", "nope", "--out", str(tmp_path / "storage")])
    assert result.exit_code == 1
    assert "database 'shop' has no task 'nope' (its tasks: churn)" in result.output
    assert "stages:" not in result.output  # refused before any stage ran


def test_config_naming_a_stage_without_knobs_or_a_wrong_knob_fails_before_running(tmp_path, monkeypatch):
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    config = tmp_path / "knobs.yaml"
    config.write_text("raw_tables: {rows: 5}\n")
    result = CliRunner().invoke(app, ["distill", "shop", "churn", "--config", str(config)])
    assert result.exit_code == 1
    assert "stage 'raw_tables' has no knobs" in result.output and "distilled_features (" in result.output
    config.write_text("cluster_pretraining: {epoch: 3}\n")  # the knob is `epochs`
    result = CliRunner().invoke(app, ["distill", "shop", "churn", "--config", str(config)])
    assert result.exit_code == 1 and "epoch" in result.output and "stages:" not in result.output.split("error")[0]


def test_second_budget_reuses_the_database_stages_and_a_changed_source_reruns_them(tmp_path, monkeypatch, quick):
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # one instance remembers the runs
    storage = ["--out", str(tmp_path / "storage"), *quick]
    first = CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "n6", *storage])
    assert first.exit_code == 0, first.output
    assert "reused" not in first.output and "cluster_pretraining" in first.output

    second = CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "0.2", *storage])
    assert second.exit_code == 0, second.output
    reused = "reused: raw_tables, validated_schema, column_tokens, cluster_pretraining"
    assert reused in second.output
    ran = second.output.split("stages: ")[1].splitlines()[0]
    assert ran.startswith("teacher_labels") and "raw_tables" not in ran and "cluster_pretraining" not in ran

    other_seed = CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "0.2", "--seed", "1", *storage])
    assert "reused" not in other_seed.output  # another seed is another pretraining

    order = shop_tables()["order"]
    order.loc[0, "quantity"] = 99
    overwrite_table(tmp_path / "data" / "shop", "order", order)
    changed = CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "0.2", "--seed", "1", *storage])
    assert changed.exit_code == 0, changed.output
    assert "reused" not in changed.output
    assert changed.output.split("stages: ")[1].startswith("raw_tables")


def test_a_refusing_quality_gate_exits_3_without_publishing_and_a_met_one_publishes(tmp_path, monkeypatch, quick):
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    args = ["distill", "shop", "churn", "--ratio", "0.2", "--evaluate", "--models", "sage", "--out", str(tmp_path / "s"),
            *quick]
    refused = CliRunner().invoke(app, [*args, "--floor", "1e9", "--compare"])  # nothing keeps 1e9 of anything
    assert refused.exit_code == 3, refused.output
    assert "quality gate refused" in refused.output and "distilled database:" not in refused.output
    assert "| t2g_no_pseudo |" in refused.output and "| herding_histories |" in refused.output  # the comparison
    met = CliRunner().invoke(app, [*args, "--floor", "-1e9"])  # any retention clears it
    assert met.exit_code == 0, met.output
    assert "distilled database:" in met.output
    assert "ablation_features" not in met.output.split("stages: ")[1]  # no comparison asked for
