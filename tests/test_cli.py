"""The ``t2g`` command: distill a fixture database end to end through Dagster."""

from typer.testing import CliRunner

from shop import make_shop
from t2g_cli.main import app


def test_distill_prints_where_and_how_much_smaller(tmp_path, monkeypatch):
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    result = CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "0.2", "--out", str(tmp_path / "storage")])
    assert result.exit_code == 0, result.output
    assert "distilled database:" in result.output and "x smaller" in result.output
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
    assert "sbm_structure failed: ValueError: database 'shop' has no task 'nope' (its tasks: churn)" in result.output
