"""Metrics, utility retention, the leakage gate, the score table and its plots."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from test_models import ENTITY, EVENTS, make_fixture, make_graph

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.baselines import SELECTORS
from t2g_lib.subgraph_coreset import subgraph_coreset
from t2g_lib.evaluate import COLUMNS, FEW_LABELS, evaluate_methods, scores_markdown
from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.full_training import FULL, train_full_models
from t2g_lib.graph import SyntheticGraph
from t2g_lib.krr import Distillation
from t2g_lib.krr_select import GNNJudge
from t2g_lib.leakage import check_leakage
from t2g_lib.models import ModelSpec
from t2g_lib.metrics import primary_metric, score, trivial_score, utility_retention
from t2g_lib.plots import plot_metric_vs_compression, plot_retention_bars
from t2g_lib.temporal import TemporalSampler, to_seconds
from t2g_lib.train import SampledSplit, as_feature_tensors

SPEC = ModelSpec(hidden=16)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DAY = 86400


def test_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200), 0, 1)
    assert score("binary_classification", y, p)["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    yc = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200)
    got = score("multiclass", yc, probs)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yc, probs.argmax(1)))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(yc, probs.argmax(1), average="macro"))
    yr, pr = rng.normal(size=50), rng.normal(size=50)
    assert score("regression", yr, pr)["mae"] == pytest.approx(skm.mean_absolute_error(yr, pr))
    assert primary_metric("regression") == ("mae", False)
    assert primary_metric("binary") == ("auroc", True)


def test_utility_retention_is_one_at_full_and_zero_at_trivial() -> None:
    assert utility_retention(0.8, 0.8, "binary") == pytest.approx(1.0)
    assert utility_retention(0.5, 0.8, "binary") == pytest.approx(0.0)
    assert utility_retention(0.65, 0.8, "binary") == pytest.approx(0.5)
    y_train, y_test = np.array([0.0, 1.0, 2.0, 10.0]), np.array([1.0, 3.0, 5.0])
    mae_const = trivial_score("regression", y_train, y_test)
    assert mae_const == pytest.approx(np.mean(np.abs(y_test - 1.5)))
    assert utility_retention(1.0, 1.0, "regression", mae_const) == pytest.approx(1.0)
    assert utility_retention(mae_const, 1.0, "regression", mae_const) == pytest.approx(0.0)
    assert utility_retention(1.5, 1.0, "regression", mae_const) == pytest.approx(
        (mae_const - 1.5) / (mae_const - 1.0)
    )
    majority = trivial_score("multiclass", np.array([2, 2, 1]), np.array([2, 0, 0, 2]))
    assert majority == pytest.approx(0.5)
    assert utility_retention(majority, 0.9, "multiclass", majority) == pytest.approx(0.0)
    assert math.isnan(utility_retention(0.7, 0.5, "binary"))  # full data no better than chance
    with pytest.raises(ValueError):
        utility_retention(1.0, 1.0, "regression")


def test_leakage_check_passes_on_temporal_samples_and_fails_on_a_planted_leak() -> None:
    fx = make_fixture("binary")
    sampler = TemporalSampler(fx.db, [8, 8])
    split = SampledSplit(sampler, fx.features, fx.val, fx.task, 16)
    ok = check_leakage(fx.db, ENTITY, split.samples())
    assert ok.passed and ok.max_leak_seconds == 0 and ok.examples == []
    # Plant a leak: subgraphs sampled 20 days after the label time they are checked against.
    index, times = fx.val["user"].to_numpy(), to_seconds(fx.val["label time"])
    leaky = sampler.sample(ENTITY, index, times + 20 * DAY, as_feature_tensors(fx.features))
    bad = check_leakage(fx.db, ENTITY, [(leaky, times)])
    assert not bad.passed
    assert 0 < bad.max_leak_seconds <= 20 * DAY
    first = bad.examples[0]
    assert first["table"] == EVENTS and first["leak_seconds"] == bad.max_leak_seconds
    assert pd.Timestamp(first["row_time"]) > pd.Timestamp(first["label_time"])


def _full(fx, **kwargs):
    return train_full_models(fx.db, fx.features, fx.task, ["sage"], [0], epochs=3, batch_size=64, spec=SPEC, **kwargs)


def _evaluate(fx, methods, full=True, **kwargs) -> pd.DataFrame:
    return evaluate_methods(
        methods, ["sage"], fx.db, fx.features, fx.task, full=_full(fx) if full else None, seeds=[0],
        recipe=DistilledRecipe(steps=30), batch_size=64, spec=SPEC, distill_seconds={"t2g": 1.5}, **kwargs,
    )


def test_evaluate_methods_builds_the_score_table() -> None:
    fx = make_fixture("binary")
    t2g = make_graph(fx)
    rand = subgraph_coreset(SELECTORS["random_subgraphs"], fx.db, fx.features, t2g, fx.task, 0, SPEC)
    methods = {"t2g": t2g, "random": rand}
    df = _evaluate(fx, methods, few_labels=9)
    assert list(df.columns) == COLUMNS
    assert set(df["method"]) == {FULL, FEW_LABELS, "t2g", "random"} and set(df["model"]) == {"sage"}
    few = df[df["method"] == FEW_LABELS].iloc[0]
    assert few["compression_ratio"] == 1.0 and math.isnan(few["distill_seconds"])  # a reference, not a distillation
    assert (df["metric"] == "auroc").all()
    assert df.attrs["leakage"]["passed"]
    full = df[df["method"] == FULL].iloc[0]
    assert full["compression_ratio"] == 1.0 and full["utility_retention"] == pytest.approx(1.0)
    assert full["speedup"] == pytest.approx(1.0)
    row = df[df["method"] == "t2g"].iloc[0]
    assert row["storage_bytes"] == t2g.nbytes() >= df[df["method"] == "random"].iloc[0]["storage_bytes"]
    assert row["compression_ratio"] == pytest.approx(full["storage_bytes"] / t2g.nbytes())
    assert row["distill_seconds"] == 1.5
    # Retention is the share of the full model's gain over chance (AUROC 0.5) that t2g keeps.
    assert row["utility_retention"] == pytest.approx((row["value"] - 0.5) / (full["value"] - 0.5))
    assert row["value_std"] == 0.0 and row["n_seeds"] == 1
    md = scores_markdown(df)
    assert md.count("\n") == 2 + len(df) and "| sage | t2g | auroc |" in md


def test_evaluation_reads_the_full_data_reference_without_retraining() -> None:
    fx = make_fixture("binary")
    lines: list[str] = []
    full = _full(fx, log=lines.append)
    assert any("training on the full database" in line for line in lines)
    assert full.leakage["passed"] and list(full.records["model"]) == ["sage"]
    lines.clear()
    df = evaluate_methods({"t2g": make_graph(fx)}, ["sage"], fx.db, fx.features, fx.task, full=full, seeds=[0],
                          recipe=DistilledRecipe(steps=30), batch_size=64, spec=SPEC, log=lines.append)
    assert not any("full database" in line for line in lines)  # the reference is read, not retrained
    row = df[df["method"] == FULL].iloc[0]
    reference = full.record("sage", 0)
    assert row["value"] == reference["auroc"] and row["val_value"] == reference["val_value"]
    assert row["train_seconds"] == reference["train_seconds"] and row["storage_bytes"] == full.storage_bytes
    with pytest.raises(ValueError, match="no hgt model trained with seed 0"):
        evaluate_methods({"t2g": make_graph(fx)}, ["hgt"], fx.db, fx.features, fx.task, full=full, seeds=[0])


@pytest.mark.parametrize("task_type", ["multiclass_classification", "regression"])
def test_evaluate_methods_other_task_types(task_type: str) -> None:
    fx = make_fixture(task_type.split("_")[0])
    df = _evaluate(fx, {"t2g": make_graph(fx)})
    metric = "accuracy" if task_type.startswith("multi") else "mae"
    assert (df["metric"] == metric).all()
    assert ("macro_f1" in df.columns) == (metric == "accuracy")
    y_test = fx.test["y"].to_numpy()
    assert df.attrs["trivial_score"] == pytest.approx(trivial_score(task_type, fx.train["y"].to_numpy(), y_test))
    assert df[df["method"] == FULL]["utility_retention"].iloc[0] == pytest.approx(1.0)


class LateSampler(TemporalSampler):
    """Samples 30 days past each label time: a planted leak."""

    def sample(self, table, index, time, features=None):
        return super().sample(table, index, np.asarray(time) + 30 * DAY, features)


def test_evaluate_methods_trains_nothing_on_a_leaky_sampler(monkeypatch) -> None:
    fx = make_fixture("binary")
    monkeypatch.setattr("t2g_lib.eval_splits.make_sampler", lambda db, nn: LateSampler(db, list(nn)))
    lines: list[str] = []
    df = _evaluate(fx, {"t2g": make_graph(fx)}, full=False, log=lines.append)
    assert df.empty and list(df.columns) == COLUMNS  # no model was trained
    leak = df.attrs["leakage"]
    assert not leak["passed"] and 0 < leak["max_leak_seconds"] <= 30 * DAY
    assert {e["split"] for e in leak["examples"]} <= {"train", "val", "test"}
    assert leak["examples"][0]["leak_seconds"] == leak["max_leak_seconds"]
    assert any("temporal leakage" in line for line in lines)


def test_a_leak_found_by_full_training_stops_the_evaluation(monkeypatch) -> None:
    fx = make_fixture("binary")
    with monkeypatch.context() as patched:
        patched.setattr("t2g_lib.eval_splits.make_sampler", lambda db, nn: LateSampler(db, list(nn)))
        full = _full(fx)
    assert full.records.empty and not full.leakage["passed"]  # nothing was trained
    df = evaluate_methods({"t2g": make_graph(fx)}, ["sage"], fx.db, fx.features, fx.task, full=full, seeds=[0])
    assert df.empty and df.attrs["leakage"] == full.leakage


def test_plots_return_png_bytes() -> None:
    rows = []
    for model in ("sage", "hgt"):
        rows.append(dict(model=model, method=FULL, metric="auroc", value=0.8, value_std=0.0,
                         compression_ratio=1.0, utility_retention=1.0))
        for method in ("t2g", "random"):
            for ratio, value in ((50.0, 0.75), (500.0, 0.7)):
                rows.append(dict(model=model, method=method, metric="auroc", value=value, value_std=0.01,
                                 compression_ratio=ratio, utility_retention=(value - 0.5) / 0.3))
    rows.append(dict(model="gbm", method=FULL, metric="auroc", value=0.82, value_std=0.0,
                     compression_ratio=1.0, utility_retention=1.0))
    rows.append(dict(model="sage", method="few_labels", metric="auroc", value=0.6, value_std=0.0,
                     compression_ratio=1.0, utility_retention=0.3))
    df = pd.DataFrame(rows)
    for png in (plot_metric_vs_compression(df), plot_retention_bars(df)):
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    single = df[df["compression_ratio"] != 500.0]
    assert plot_retention_bars(single).startswith(PNG_MAGIC)


def test_a_graph_published_under_two_names_is_trained_once() -> None:
    """T2G publishes the herding histories when its GNN prefers them, the same graph as that
    baseline: evaluation trains it once and reports it under both names; any change to the
    graph (one label) makes it a graph of its own."""
    fx = make_fixture("binary")
    graph = make_graph(fx)
    other = replace(graph, y=np.asarray(graph.y).copy())
    other.y[0] = 1.0 - other.y[0]
    assert graph.fingerprint() == make_graph(fx).fingerprint() != other.fingerprint()
    lines: list[str] = []
    df = _evaluate(fx, {"t2g": graph, "herding_histories": make_graph(fx), "changed": other}, full=False,
                   log=lines.append)
    rows = df.set_index("method")
    for col in ("value", "val_value", "train_seconds"):
        assert rows.loc["t2g", col] == rows.loc["herding_histories", col]
    assert rows.loc["t2g", "distill_seconds"] == 1.5 and np.isnan(rows.loc["herding_histories", "distill_seconds"])
    assert sum("already scored" in line for line in lines) == 1


def test_the_judges_model_stands_in_for_training_it_again(tmp_path) -> None:
    """The GNN judge trains evaluation's model on the graph it keeps. Stored with the graph,
    which loads back bit for bit (its codec coefficients are saved as they are, not encoded
    again), that model is reused by evaluation, which reports what training it again reports;
    a model trained another way (here: in smaller batches) is not."""
    fx = make_fixture("binary")
    graph = make_graph(fx).with_codec(FeatureCodec.fit(fx.features, 3))
    judge = GNNJudge(fx.db, fx.features, fx.task, DistilledRecipe(steps=30), seed=0, spec=SPEC, batch_size=64)
    judge(graph)
    Distillation(graph, {"seconds": 1.5}, judge.model_for(graph)).save(tmp_path)
    stored = Distillation.load(tmp_path)
    assert stored.graph.fingerprint() == graph.fingerprint() and stored.judged.fingerprint == graph.fingerprint()
    lines: list[str] = []
    reused = _evaluate(fx, {"t2g": stored.graph}, full=False, trained=[stored.judged], log=lines.append)
    assert sum("model reused" in line for line in lines) == 1
    again = _evaluate(fx, {"t2g": stored.graph}, full=False, log=lines.append)
    for col in ("value", "val_value", "epochs_trained", "storage_bytes"):
        assert reused.iloc[0][col] == again.iloc[0][col]
    lines.clear()
    evaluate_methods({"t2g": stored.graph}, ["sage"], fx.db, fx.features, fx.task, seeds=[0], recipe=DistilledRecipe(steps=30, batch_size=8),
                     batch_size=64, spec=SPEC, trained=[stored.judged], log=lines.append)
    assert not any("model reused" in line for line in lines)


def test_a_stored_graph_loads_back_bit_for_bit(tmp_path) -> None:
    """Far from the origin, encoding a decoded row again flips some float16 coefficients, so
    a graph saved by re-encoding its rows would load back as another graph. Its coefficients
    are saved as they are, and stand for the rows only while they still decode to them."""
    fx = make_fixture("binary")
    far = {t: v + 1000.0 for t, v in fx.features.items()}
    codec = FeatureCodec.fit(far, 3)
    graph = make_graph(fx)
    graph = replace(graph, x={t: v + 1000.0 for t, v in graph.x.items()}).with_codec(codec)
    assert any((codec.encode(t, graph.x[t]) != graph.coef[t]).any() for t in graph.x)  # the hazard is real here
    loaded = SyntheticGraph.load(graph.save(tmp_path))
    assert loaded.fingerprint() == graph.fingerprint()
    moved = replace(graph, x={**graph.x, ENTITY: graph.x[ENTITY] + 1.0})
    np.testing.assert_array_equal(moved.coefficients(ENTITY), codec.encode(ENTITY, moved.x[ENTITY]))
