"""GNNs and training protocols on a small in-code database with a planted temporal signal.

The fixture (``make_fixture``, shared by the baseline and evaluation tests) has a user
table called ``keys``, an events table whose name has a space, a dot and non-ASCII
letters, and an untimed ``type`` table; FK columns are called ``update`` and ``ä user``.
Each user's class shows only in the features of their events, so a model must read its
neighbourhood to learn, and labels at T must only see events stamped <= T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from relbench.base import Database, Table

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.graph import GraphSchema, SyntheticGraph
from t2g_lib.models import MODEL_NAMES, ModelSpec, build_model
from t2g_lib.task_data import TaskData
from t2g_lib.temporal import TemporalSampler, to_seconds
from t2g_lib.train import (
    SampledSplit, as_feature_tensors, predict, train_distilled, train_full,
)

ENTITY, EVENTS, ITEMS = "keys", "order by.évènements", "type"
TIME_COL = "when ts"
START = pd.Timestamp("2024-01-01")


@dataclass
class Fixture:
    db: Database
    features: dict[str, np.ndarray]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    task_type: str
    entity_table: str = ENTITY
    entity_col: str = "user"
    time_col: str = "label time"
    target_col: str = "y"

    @property
    def task(self) -> TaskData:
        """The fixture's prediction task, as the library takes it."""
        return TaskData("fixture", self.task_type, self.entity_table, self.entity_col, self.time_col,
                        self.target_col, self.train, self.val, self.test)


def make_fixture(task_type: str = "binary", n_users: int = 48, events_per_user: int = 12,
                 n_items: int = 5, dim: int = 8, seed: int = 0) -> Fixture:
    """Users of 3 latent classes; their events' features reveal the class."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 3, n_users)
    n_ev = n_users * events_per_user
    ev_user = np.repeat(np.arange(n_users), events_per_user)
    days = rng.integers(0, 100, n_ev)
    users = pd.DataFrame({"id": np.arange(n_users), "update": rng.normal(size=n_users)})
    events = pd.DataFrame({
        "event id": np.arange(n_ev),
        "ä user": ev_user,
        "update": rng.integers(0, n_items, n_ev),
        TIME_COL: START + pd.to_timedelta(days, "D"),
    })
    items = pd.DataFrame({"id": np.arange(n_items)})
    db = Database({
        ENTITY: Table(users, {}, "id", None),
        EVENTS: Table(events, {"ä user": ENTITY, "update": ITEMS}, "event id", TIME_COL),
        ITEMS: Table(items, {}, "id", None),
    })
    ev_x = rng.normal(scale=0.5, size=(n_ev, dim))
    ev_x[np.arange(n_ev), cls[ev_user]] += 2.0
    features = {
        ENTITY: rng.normal(size=(n_users, dim)).astype(np.float32),
        EVENTS: ev_x.astype(np.float32),
        ITEMS: rng.normal(size=(n_items, dim)).astype(np.float32),
    }

    def labels(day_list: list[int]) -> pd.DataFrame:
        users_rep = np.tile(np.arange(n_users), len(day_list))
        t = np.repeat([START + pd.Timedelta(days=d) for d in day_list], n_users)
        c = cls[users_rep]
        if task_type == "binary":
            y = (c == 0).astype(np.int64)
        elif task_type == "multiclass":
            y = c.astype(np.int64)
        else:
            y = 2.0 * c + rng.normal(scale=0.1, size=len(c))
        return pd.DataFrame({"label time": t, "user": users_rep, "y": y})

    return Fixture(db, features, labels([30, 45, 60]), labels([75]), labels([90]), task_type)


def make_graph(fx: Fixture, counts: dict[str, int] | None = None, seed: int = 0) -> SyntheticGraph:
    """A hand-made distilled graph over the fixture's schema: class-revealing event nodes,
    one parent per child, soft labels on the user nodes."""
    rng = np.random.default_rng(seed)
    schema = GraphSchema.from_database(fx.db)
    counts = counts or {ENTITY: 9, EVENTS: 27, ITEMS: 3}
    dim = fx.features[ENTITY].shape[1]
    user_cls = np.arange(counts[ENTITY]) % 3
    x = {t: rng.normal(scale=0.5, size=(n, dim)).astype(np.float32) for t, n in counts.items()}
    parents = {}
    for rel in schema.relations:
        parents[rel.index] = rng.integers(0, counts[rel.parent], counts[rel.child])
        if rel.parent == ENTITY:
            x[EVENTS][np.arange(counts[EVENTS]), user_cls[parents[rel.index]]] += 2.0
    if fx.task_type == "multiclass":
        y = np.full((counts[ENTITY], 3), 0.05, dtype=np.float32)
        y[np.arange(counts[ENTITY]), user_cls] = 0.9
    elif fx.task_type == "binary":
        y = np.where(user_cls == 0, 0.9, 0.1).astype(np.float32)
    else:
        y = (2.0 * user_cls).astype(np.float32)
    return SyntheticGraph(schema, ENTITY, x, parents, y)


def _fit_steps(model, x_dict, edge_index_dict, seed_type, n, target, task_type, steps=40):
    from t2g_lib.metrics import loss as task_loss

    model.set_task(task_type)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        loss = task_loss(task_type, model(x_dict, edge_index_dict, seed_type, n), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def fx() -> Fixture:
    return make_fixture("binary")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_learns_on_sampled_real_subgraph(fx: Fixture, name: str) -> None:
    schema = GraphSchema.from_database(fx.db)
    sub = TemporalSampler(fx.db, [8, 8]).sample(
        ENTITY, fx.train["user"].to_numpy(), to_seconds(fx.train["label time"]),
        as_feature_tensors(fx.features),
    )
    torch.manual_seed(0)
    model = build_model(name, schema.metadata(), in_dim=8, hidden=32)
    target = torch.as_tensor(fx.train["y"].to_numpy(), dtype=torch.float32)
    losses = _fit_steps(model, sub.x_dict, sub.edge_index_dict, "t0", len(fx.train), target, "binary")
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_learns_on_synthetic_graph(fx: Fixture, name: str) -> None:
    graph = make_graph(fx)
    data = graph.to_hetero()
    torch.manual_seed(0)
    model = build_model(name, graph.schema.metadata(), in_dim=8, hidden=32)
    losses = _fit_steps(model, data.x_dict, data.edge_index_dict, "t0", None, data["t0"].y, "binary")
    assert losses[-1] < 0.9 * losses[0]


def test_modules_are_never_keyed_by_user_names(fx: Fixture) -> None:
    schema = GraphSchema.from_database(fx.db)
    for name in MODEL_NAMES:
        keys = " ".join(build_model(name, schema.metadata(), 8).state_dict())
        for user_name in (ENTITY, EVENTS, ITEMS, "update", "ä user"):
            assert user_name not in keys


def test_model_without_edges_still_predicts(fx: Fixture) -> None:
    schema = GraphSchema.from_database(fx.db)
    x = {f"t{i}": torch.randn(4, 8) for i in range(3)}
    for name in MODEL_NAMES:
        assert build_model(name, schema.metadata(), 8, out_dim=3)(x, {}, "t0", 2).shape == (2, 3)


def test_train_full_learns_without_leakage_and_is_deterministic(fx: Fixture) -> None:
    kwargs = dict(db=fx.db, features=fx.features, task=fx.task, epochs=6, batch_size=64, seed=3, device="cpu",
                  spec=ModelSpec(hidden=32))
    a = train_full("sage", **kwargs)
    b = train_full("sage", **kwargs)
    assert a.metric_name == "auroc" and a.val_metric > 0.8
    assert a.max_leak_seconds <= 0
    assert a.losses[-1] < a.losses[0]
    pa, leak = predict(a.model, fx.db, fx.features, fx.test, fx.task, "cpu", [8, 8])
    pb, _ = predict(b.model, fx.db, fx.features, fx.test, fx.task, "cpu", [8, 8])
    assert leak <= 0 and pa.shape == (len(fx.test),)
    np.testing.assert_array_equal(pa, pb)


def test_train_distilled_transfers_to_real_seeds(fx: Fixture) -> None:
    graph = make_graph(fx)
    sampler = TemporalSampler(fx.db, [8, 8])
    val = SampledSplit(sampler, fx.features, fx.val, fx.task, 64)
    res = train_distilled("hgt", graph, DistilledRecipe(steps=60, eval_every=20), seed=1, device="cpu",
                          task_type="binary", spec=ModelSpec(hidden=32), val_split=val)
    again = train_distilled("hgt", graph, DistilledRecipe(steps=60, eval_every=20), seed=1, device="cpu",
                            task_type="binary", spec=ModelSpec(hidden=32), val_split=val)
    assert res.losses[-1] < res.losses[0]
    assert res.val_metric > 0.7
    pred, leak = predict(res.model, fx.db, fx.features, fx.test, fx.task)
    assert leak <= 0 and ((pred >= 0) & (pred <= 1)).all()
    pred_again, _ = predict(again.model, fx.db, fx.features, fx.test, fx.task)
    np.testing.assert_array_equal(pred, pred_again)


@pytest.mark.parametrize("task_type", ["multiclass", "regression"])
def test_distilled_outputs_match_the_task(task_type: str) -> None:
    fxt = make_fixture(task_type)
    graph = make_graph(fxt)
    res = train_distilled("han", graph, DistilledRecipe(steps=80), seed=0, task_type=task_type, spec=ModelSpec(hidden=32))
    assert res.losses[-1] < res.losses[0]
    pred, _ = predict(res.model, fxt.db, fxt.features, fxt.test, fxt.task)
    if task_type == "multiclass":
        assert pred.shape == (len(fxt.test), 3)
        np.testing.assert_allclose(pred.sum(1), 1.0, rtol=1e-5)
    else:
        # Standardised during training by the synthetic labels' mean and std, and mapped
        # back to target units at prediction time.
        assert pred.shape == (len(fxt.test),)
        model = res.model
        assert model.target_loc.item() == pytest.approx(graph.y.mean(), rel=1e-6)
        assert model.target_scale.item() == pytest.approx(graph.y.std(), rel=1e-6)
        raw = torch.tensor([[-1.0], [0.0], [2.0]])
        expected = [graph.y.mean() - graph.y.std(), graph.y.mean(), graph.y.mean() + 2 * graph.y.std()]
        np.testing.assert_allclose(model.output_to_prediction(raw).numpy(), expected, rtol=1e-5)


def test_a_recipe_refuses_what_cannot_train() -> None:
    for bad in (dict(steps=0), dict(eval_every=0), dict(batch_size=0)):
        with pytest.raises(ValueError, match="steps >= 1|batch_size must be"):
            DistilledRecipe(**bad)


def test_the_judge_trains_as_evaluation_does_by_default() -> None:
    """The GNN judge's recipe (``KRRConfig``) and evaluation's (``T2GSettings``) are equal by
    default, so evaluation reuses the judge's model of the kept graph instead of training it again."""
    from t2g_assets.resources import T2GSettings
    from t2g_lib.krr_config import KRRConfig

    settings = T2GSettings(data_dir="d", storage_dir="s", text_cache_dir="t")
    assert KRRConfig().judge_recipe() == settings.distilled_recipe() == DistilledRecipe()


class _ScriptedVal:
    """A val split whose scores are a script, one per scoring: the loop's stopping rule, exactly."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)

    def __len__(self) -> int:
        return 1

    def score(self, model, device, kind) -> dict[str, float]:
        return {"auroc": self.scores.pop(0)}


def test_patience_stops_after_scorings_without_improvement_and_keeps_the_best() -> None:
    """``DistilledRecipe.patience``: training stops after that many scorings of val without a
    better one, and the model comes back as it was at its best scoring."""
    from t2g_lib.metrics import BINARY
    from t2g_lib.train import _fit

    model = torch.nn.Linear(1, 1)

    def one_round() -> float:
        with torch.no_grad():
            model.bias += 1.0  # the round count, readable from the weights
        return 0.0

    start = float(model.bias)
    fit = _fit(model, 100, one_round, _ScriptedVal([0.6, 0.7, 0.65, 0.64, 0.9]), BINARY, "cpu", eval_every=2,
               patience=2)
    assert fit.epochs == 8 and fit.best == 0.7  # scored at 2, 4 (best), 6, 8: two without improvement
    assert float(model.bias) == pytest.approx(start + 4)
    fit = _fit(model, 10, one_round, _ScriptedVal([0.6, 0.7, 0.65, 0.64, 0.9]), BINARY, "cpu", eval_every=2)
    assert fit.epochs == 10 and fit.best == 0.9  # without patience every round runs


def test_a_recipe_refuses_a_patience_below_one() -> None:
    with pytest.raises(ValueError, match="patience"):
        DistilledRecipe(patience=0)


def test_han_reads_batches_of_its_own_size() -> None:
    recipe = DistilledRecipe(batch_size=512, han_batch_size=256)
    assert recipe.batch_size_for("han") == 256
    assert recipe.batch_size_for("sage") == recipe.batch_size_for("hgt") == 512
    assert DistilledRecipe(batch_size=64, han_batch_size=None).batch_size_for("han") == 64
    with pytest.raises(ValueError, match="batch_size must be"):
        DistilledRecipe(han_batch_size=0)


def test_batches_built_again_past_the_cache_train_the_same_model(fx: Fixture, monkeypatch) -> None:
    """A distilled graph's mini-batches beyond ``BATCH_CACHE_BYTES`` are built again when
    drawn instead of kept: the same steps, the same model, bit for bit."""
    import t2g_lib.train as train

    graph = make_graph(fx)
    recipe = DistilledRecipe(steps=12, batch_size=2)
    assert graph.num_examples() > 3 * recipe.batch_size  # several batches, each drawn more than once
    kept = train_distilled("sage", graph, recipe, seed=0, task_type="binary")
    monkeypatch.setattr(train, "BATCH_CACHE_BYTES", 0)
    rebuilt = train_distilled("sage", graph, recipe, seed=0, task_type="binary")
    assert kept.losses == rebuilt.losses
    for a, b in zip(kept.model.state_dict().values(), rebuilt.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_split_past_its_memory_keeps_its_inputs_in_scratch_files_and_scores_the_same(
        fx: Fixture, monkeypatch, tmp_path) -> None:
    """Beyond ``SPLIT_MEMORY_BYTES`` a sampled split keeps its model inputs in scratch files:
    the same predictions, bit for bit, with the inputs' features in files, not memory."""
    import sys
    import tempfile

    import t2g_lib.train as train

    graph = make_graph(fx)
    res = train_distilled("sage", graph, DistilledRecipe(steps=10), seed=0, task_type="binary")
    sampler = TemporalSampler(fx.db, [8, 8])
    in_memory = SampledSplit(sampler, fx.features, fx.val, fx.task, 16).predict(res.model, "cpu")
    monkeypatch.setattr(train, "SPLIT_MEMORY_BYTES", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    split = SampledSplit(sampler, fx.features, fx.val, fx.task, 16)
    np.testing.assert_array_equal(split.predict(res.model, "cpu"), in_memory)
    if sys.platform.startswith("linux"):
        from test_scratch import mapping_of

        x = next(t for inputs in split.inputs(res.model) for t in inputs.x.values() if t.numel())
        assert mapping_of(x).startswith(str(tmp_path))
