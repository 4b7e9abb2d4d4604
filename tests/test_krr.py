"""Kernels, closed-form KRR and the KRR distillation loop on a small timed database."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from relbench.base import Database, Table
from sklearn.cluster import KMeans
from sklearn.kernel_ridge import KernelRidge

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.graph import GraphSchema, SyntheticGraph
from t2g_lib.train import train_distilled
from t2g_lib.kernels import get_kernel
from t2g_lib.krr import KRRConfig, distill_features, krr_predict, label_targets
from t2g_lib.krr_select import GNNJudge, gnn_checkpoints
from t2g_lib.krr_start import herding_coresets, init_from_centroids, nearest_blocks
from t2g_lib.task_data import TaskData

T0 = pd.Timestamp("2021-03-01")


# --- kernels and closed-form KRR

@pytest.mark.parametrize("kernel", ["precomputed", "rbf"])
def test_krr_predict_matches_sklearn(kernel: str) -> None:
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(15, 4)), rng.normal(size=(7, 4))
    ys = rng.normal(size=(15, 2))
    k = get_kernel("rbf", gamma=0.3) if kernel == "rbf" else get_kernel("linear")
    k_ss = k(torch.tensor(xs), torch.tensor(xs))
    k_ts = k(torch.tensor(xt), torch.tensor(xs))
    ridge = 0.05
    alpha = ridge * float(k_ss.diagonal().mean())  # krr_predict scales ridge by mean diag
    if kernel == "rbf":
        ref = KernelRidge(alpha=alpha, kernel="rbf", gamma=0.3).fit(xs, ys).predict(xt)
    else:
        fit = KernelRidge(alpha=alpha, kernel="precomputed").fit(k_ss.numpy(), ys)
        ref = fit.predict(k_ts.numpy())
    ours = krr_predict(k_ts, k_ss, torch.tensor(ys), ridge).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)
    one = krr_predict(k_ts, k_ss, torch.tensor(ys[:, 0]), ridge)
    assert one.shape == (7,) and np.allclose(one.numpy(), ref[:, 0])


def test_ntk_and_nngp_are_psd() -> None:
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in ("ntk", "nngp", "rbf", "linear"):
        k = get_kernel(name, depth=3) if name in ("ntk", "nngp") else get_kernel(name)
        mat = k(x, x)
        assert torch.allclose(mat, mat.T, atol=1e-10)
        eig = torch.linalg.eigvalsh(mat)
        assert float(eig.min()) > -1e-6 * float(eig.max()), name


def test_ntk_matches_finite_width_monte_carlo() -> None:
    """One hidden ReLU layer f(x) = sqrt(2/m) v . relu(W x): empirical NNGP and NTK."""
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    m = 400_000
    w = torch.randn(m, 4, generator=g, dtype=torch.float64)
    v = torch.randn(m, generator=g, dtype=torch.float64)
    pre = x @ w.T  # (3, m)
    act, gate = torch.relu(pre), (pre > 0).double()
    nngp_mc = 2 / m * act @ act.T  # grads w.r.t. v
    grad_w = 2 / m * (gate * v * v) @ gate.T * (x @ x.T)  # grads w.r.t. W
    ntk_mc = nngp_mc + grad_w
    assert torch.allclose(get_kernel("nngp", depth=1)(x, x), nngp_mc, atol=0.02)
    assert torch.allclose(get_kernel("ntk", depth=1)(x, x), ntk_mc, atol=0.03)
    # And the closed form at rho = 0: Sigma = 1/pi, Theta = 0 * 1/2 + 1/pi.
    e = torch.eye(2, dtype=torch.float64)
    assert math.isclose(float(get_kernel("ntk", depth=1)(e, e)[0, 1]), 1 / math.pi, rel_tol=1e-6)


# --- distillation on a small timed database

N_CUST, N_PROD, N_ORD, D, K = 40, 10, 300, 6, 3


def _fixture():
    rng = np.random.default_rng(0)
    customers = pd.DataFrame({"id": np.arange(N_CUST)})
    products = pd.DataFrame({"id": np.arange(N_PROD)})
    orders = pd.DataFrame({
        "id": np.arange(N_ORD),
        "customer id": rng.integers(0, N_CUST, N_ORD),
        "keys": rng.integers(0, N_PROD, N_ORD),
        "when": T0 + pd.to_timedelta(rng.integers(0, 100, N_ORD), unit="D"),
    })
    db = Database({
        "customers": Table(customers, {}, "id", None),
        "order items": Table(
            orders, {"customer id": "customers", "keys": "products"}, "id", "when"
        ),
        "products": Table(products, {}, "id", None),
    })
    features = {
        t: rng.normal(size=(len(tab.df), D)).astype(np.float32) for t, tab in db.table_dict.items()
    }
    pseudo, cents = {}, {}
    for t, f in features.items():
        km = KMeans(K, n_init=1, random_state=0).fit(f)
        pseudo[t], cents[t] = km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)

    def labels(days: list[int]) -> pd.DataFrame:
        ent = np.repeat(np.arange(N_CUST), len(days))
        when = np.tile([T0 + pd.Timedelta(days=d) for d in days], N_CUST)
        score = features["customers"][ent, 0] + 0.3 * rng.normal(size=len(ent))
        return pd.DataFrame({"at": when, "cust": ent, "y": (score > 0).astype(int), "v": score,
                             "c": np.digitize(score, [-0.5, 0.5])})

    schema = GraphSchema.from_database(db)
    sizes = {"customers": 2, "order items": 3, "products": 1}  # synthetic nodes per block
    blocks = {t: np.repeat(np.arange(K), n) for t, n in sizes.items()}
    parents = {
        r.index: rng.integers(0, len(blocks[r.parent]), len(blocks[r.child]))
        for r in schema.relations
    }
    structure = SyntheticGraph(
        schema, "customers", {t: cents[t][b] for t, b in blocks.items()}, parents,
        np.zeros(len(blocks["customers"]), dtype=np.float32), blocks,
    )
    return db, features, pseudo, cents, structure, labels([30, 50, 70]), labels([85, 95])


@pytest.fixture(scope="module")
def fixture():
    return _fixture()


def _distill(fixture, task_type: str = "binary_classification", target: str = "y", **overrides):
    db, features, pseudo, cents, structure, train, val = fixture
    params = dict(steps=20, eval_every=5, lr=0.05, batch_size=64, pseudo_batch_size=32,
                  pseudo_pool_batches=2, num_neighbors=[4, 4], select="krr", coreset_fallback="none")
    cfg = KRRConfig(**{**params, **overrides})
    task = TaskData("t", task_type, "customers", "cust", "at", target, train, val, val.iloc[:0])
    out = distill_features(structure, features, pseudo, cents, db, task, cfg, log=lambda _: None)
    return out.graph, out.history


@pytest.fixture(scope="module")
def binary_run(fixture):
    return _distill(fixture)


def test_loss_falls(fixture) -> None:
    _, hist = _distill(fixture, batch_size=10_000, steps=30)  # full batch: a smooth curve
    assert np.mean(hist["loss"][-5:]) < np.mean(hist["loss"][:5])
    assert len(hist["loss"]) == 30


def test_beta_zero_switches_off_pseudo_labels(fixture, binary_run) -> None:
    _, with_pseudo = binary_run
    _, without = _distill(fixture, beta=0.0)
    assert all(p == 0.0 for p in without["pseudo_loss"])
    assert all(p > 0.0 for p in with_pseudo["pseudo_loss"])
    assert without["task_loss"][0] == pytest.approx(with_pseudo["task_loss"][0])  # same start
    assert without["task_loss"][1:] != pytest.approx(with_pseudo["task_loss"][1:])


def test_best_step_selection_includes_start(fixture, binary_run) -> None:
    out, hist = binary_run
    steps = [s for s, _ in hist["val"]]
    assert steps == [0, 5, 10, 15, 20]
    assert hist["start_score"] == hist["val"][0][1]
    assert hist["best_score"] == max(s for _, s in hist["val"])
    assert dict(hist["val"])[hist["best_step"]] == hist["best_score"]
    assert out.y.shape == (6,) and ((out.y >= 0) & (out.y <= 1)).all()
    # Nothing moves with lr = 0: every score ties the start, which is kept.
    frozen, fh = _distill(fixture, lr=0.0, steps=6, eval_every=3)
    assert fh["best_step"] == 0
    db, features, pseudo, cents, structure, train, _ = fixture
    blocks = pseudo["customers"][train["cust"].to_numpy()]
    targets = label_targets(train, "y", "binary_classification")
    start = init_from_centroids(structure, cents, (blocks, targets), 0, 0.01)
    for t in structure.schema.tables:
        np.testing.assert_array_equal(frozen.x[t], start.x[t])
    np.testing.assert_allclose(frozen.y, np.clip(start.y, 1e-3, 1 - 1e-3), rtol=1e-5)


def test_same_seed_same_output(fixture, binary_run) -> None:
    out, hist = binary_run
    again, hist2 = _distill(fixture)
    assert hist["loss"] == hist2["loss"] and hist["val"] == hist2["val"]
    for t in out.x:
        np.testing.assert_array_equal(out.x[t], again.x[t])
    np.testing.assert_array_equal(out.y, again.y)
    assert out.parents.keys() == again.parents.keys()
    for rel, parents in out.parents.items():
        np.testing.assert_array_equal(parents, again.parents[rel])


def test_regression_and_multiclass(fixture) -> None:
    reg, rh = _distill(fixture, "regression", "v", steps=5)
    assert rh["metric"] == "mae" and reg.y.shape == (6,)
    assert rh["best_score"] == min(s for _, s in rh["val"])
    assert abs(float(reg.y.mean())) < 2.0  # de-standardised back to the target's scale
    mc, mh = _distill(fixture, "multiclass_classification", "c", steps=5)
    assert mh["metric"] == "accuracy" and mc.y.shape == (6, 3)
    np.testing.assert_allclose(mc.y.sum(1), 1.0, rtol=1e-5)


def test_temporal_sum_distillation_learns_ages_the_gnn_then_reads(fixture) -> None:
    graph, hist = _distill(fixture, temporal=True, aggr="sum")
    again, _ = _distill(fixture, temporal=True, aggr="sum")
    assert set(graph.age) == {"order items"}  # the only timed table
    age = graph.age["order items"]
    assert age.shape == (len(graph.x["order items"]),) and np.isfinite(age).all() and (age >= 0).all()
    assert 0 < float(np.median(age)) < 100  # orders are 0-99 days old at the labels' times
    np.testing.assert_array_equal(age, again.age["order items"])  # same seed, same ages
    model = train_distilled("sage", graph, DistilledRecipe(steps=3), seed=0, task_type="binary_classification").model
    assert model.temporal  # a graph with ages trains a model that reads them
    assert hist["best_score"] >= hist["start_score"]


def test_example_ages_copy_the_recency_of_a_real_example(fixture) -> None:
    from t2g_lib.krr_real import example_ages, matched_examples
    from t2g_lib.temporal import TemporalSampler
    from t2g_lib.timestamps import to_seconds

    db, features, _, _, structure, _, _ = fixture
    when = T0 + pd.Timedelta(days=60)
    rows = np.arange(len(structure.y))  # synthetic customer i copies real customer i at `when`
    ages = example_ages(TemporalSampler(db, [4, 4]), structure, rows, to_seconds(pd.Series([when] * len(rows))),
                        batch=4)
    assert set(ages) == {"order items"}
    orders = db.table_dict["order items"].df
    rel = next(r for r in structure.schema.relations if r.parent == "customers")
    for i in rows:
        seen = orders[(orders["customer id"] == i) & (orders["when"] <= when)]
        real = np.sort(((when - seen["when"]) / pd.Timedelta(days=1)).to_numpy())[:4]  # 4 most recent
        kids = np.flatnonzero(np.asarray(structure.parents[rel.index]) == i)
        expected = real[np.arange(len(kids)) % len(real)] if len(real) else np.full(len(kids), np.nan)
        np.testing.assert_allclose(ages["order items"][kids], expected)
    # Matching draws each synthetic node's example from its own block.
    match = matched_examples(np.array([0, 0, 1]), np.array([1, 0, 1, 0]), np.random.default_rng(0))
    assert set(match[:2]) <= {1, 3} and match[2] in {0, 2}


def test_regression_labels_stay_inside_the_train_targets_range(fixture) -> None:
    from t2g_lib.label_space import LabelSpace
    from t2g_lib.metrics import REGRESSION

    space = LabelSpace.fit(REGRESSION, np.array([0.0, 1.0, 2.0]))
    param = torch.tensor([10.0, -10.0, 0.5])  # standardised: far above, far below, inside
    space.bound_(param)
    np.testing.assert_allclose(space.from_param(param), [2.0, 0.0, 0.5 * space.std + 1.0], rtol=1e-6)
    reg, hist = _distill(fixture, "regression", "v", steps=10, lr=5.0)  # steps large enough to overshoot
    train = fixture[5]["v"]
    assert train.min() - 1e-5 <= reg.y.min() and reg.y.max() <= train.max() + 1e-5


def test_every_solve_is_bounded_by_the_support_caps(fixture, monkeypatch) -> None:
    """Steps and validation alike solve on at most support_size target nodes (pseudo-label
    solves on pseudo_support_size per table), however many synthetic rows there are."""
    import t2g_lib.krr as krr

    sizes: list[int] = []
    real = krr._krr_weights

    def recording(k_ss, y_s, ridge):
        sizes.append(k_ss.shape[0])
        return real(k_ss, y_s, ridge)

    monkeypatch.setattr(krr, "_krr_weights", recording)
    _distill(fixture, steps=4, eval_every=2, support_size=4, pseudo_support_size=3)
    assert sizes and max(sizes) == 4  # 6 synthetic customers, 9 order items: each solve capped
    assert 3 in sizes
    sizes.clear()
    _distill(fixture, steps=4, eval_every=2)  # default caps: every synthetic row takes part
    assert max(sizes) == 9


def test_herding_start_is_the_coreset_until_it_moves(fixture) -> None:
    """``start="herding"``: KRR starts from the herding subgraph coreset in the structure's
    bytes (real rows, edges and ages, nodes in their nearest centroid's block) and, as from
    centroids, keeps that start when nothing improves on it."""
    db, features, pseudo, cents, structure, train, val = fixture
    frozen, fh = _distill(fixture, lr=0.0, steps=6, eval_every=3, start="herding")
    assert fh["best_step"] == 0
    task = TaskData("t", "binary_classification", "customers", "cust", "at", "y", train, val, val.iloc[:0])
    centroid_run, _ = _distill(fixture, lr=0.0, steps=6, eval_every=3)
    start = herding_coresets(db, features, structure, cents, {"y": task}, 0, centroid_run.nbytes())[0, "y"]
    assert frozen.nbytes() <= centroid_run.nbytes()  # the centroid start's bytes, ages included
    for t in structure.schema.tables:
        np.testing.assert_array_equal(frozen.x[t], start.x[t])
        np.testing.assert_array_equal(frozen.blocks[t], nearest_blocks(start.x[t], cents[t]))
    for rel, parents in start.parents.items():
        np.testing.assert_array_equal(frozen.parents[rel], parents)
    for t, days in frozen.age.items():
        np.testing.assert_allclose(days, start.age[t], rtol=1e-5)
    assert set(frozen.age) == {t for t, d in start.age.items() if np.isfinite(d).any()} != set()
    np.testing.assert_allclose(frozen.y, np.clip(start.y, 1e-3, 1 - 1e-3), rtol=1e-5)
    moved, mh = _distill(fixture, start="herding", beta=0.5)
    assert all(p > 0.0 for p in mh["pseudo_loss"])  # nearest-centroid blocks feed the pseudo-label term
    assert mh["start_score"] == fh["start_score"]
    with pytest.raises(ValueError, match="unknown KRR start"):
        _distill(fixture, start="medoids")


def test_nearest_blocks() -> None:
    cents = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    x = np.array([[1.0, 1.0], [9.0, -1.0], [0.5, 8.0], [6.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(nearest_blocks(x, cents, chunk=3), [0, 1, 2, 1])


def test_gnn_selection_keeps_the_checkpoint_the_gnn_scores_best(fixture) -> None:
    """``select="gnn"``: the evaluation GNN judges the start, every ``gnn_every``-th step, the
    last and the surrogate's best; the kept graph is the one it scored best on real val."""
    db, features, pseudo, cents, structure, train, val = fixture
    out, hist = _distill(fixture, steps=20, eval_every=5, select="gnn", gnn_every=10, gnn_steps=10)
    judged = dict((int(s), v) for s, v in hist["gnn_val"])
    assert {0, 10, 20, hist["val"][max(range(len(hist["val"])), key=lambda i: hist["val"][i][1])][0]} <= set(judged)
    assert hist["gnn_best_score"] == max(judged.values()) == judged[hist["best_step"]]
    assert hist["best_score"] == dict(hist["val"])[hist["best_step"]]  # the surrogate's score of that step
    task = TaskData("t", "binary_classification", "customers", "cust", "at", "y", train, val, val.iloc[:0])
    assert GNNJudge(db, features, task, DistilledRecipe(steps=10), seed=0)(out) == pytest.approx(hist["gnn_best_score"])
    with pytest.raises(ValueError, match="checkpoint selection"):
        _distill(fixture, select="test")


def test_gnn_checkpoints() -> None:
    assert gnn_checkpoints(300, 100) == {0, 100, 200, 300}
    assert gnn_checkpoints(250, 100) == {0, 100, 200, 250}
    assert gnn_checkpoints(30, 0) == {0, 30}
    assert gnn_checkpoints(300, 100, first=50) == {50, 100, 200, 300}
    assert gnn_checkpoints(20, 10, first=50) == {10, 20}


@pytest.mark.parametrize("fallback", ["subgraphs", "histories"])
@pytest.mark.parametrize("prefers_coreset", [True, False])
def test_coreset_fallback_keeps_whichever_graph_the_gnn_prefers(fixture, monkeypatch, prefers_coreset, fallback) -> None:
    """``coreset_fallback``: the herding coreset in the distilled graph's bytes is judged too
    and replaces the KRR graph only when it scores higher. The judge is replaced by one that
    scores a graph by its count of labelled examples, negated or not (the coreset holds fewer
    here than the 6 synthetic customers), so both outcomes are built deterministically."""
    import t2g_lib.krr as krr

    sign = -1.0 if prefers_coreset else 1.0
    monkeypatch.setattr(krr.GNNJudge, "__call__", lambda self, g: sign * len(g.y))
    out, hist = _distill(fixture, steps=10, eval_every=5, select="gnn", gnn_every=5, coreset_fallback=fallback)
    structure = fixture[4]
    n_coreset = sign * hist["coreset_gnn_val"]
    assert 1 <= n_coreset < len(structure.y)
    if prefers_coreset:
        assert hist["kept"] == f"herding_{fallback}" and len(out.y) == n_coreset
        assert set(out.blocks) == set(structure.blocks) and out.age
        assert (out.earlier is not None) == (fallback == "histories")
    else:
        assert hist["kept"] == "krr" and len(out.y) == len(structure.y)
    _, plain = _distill(fixture, steps=10, eval_every=5)
    assert plain["kept"] == "krr" and "coreset_gnn_val" not in plain


@pytest.mark.parametrize("teacher_wins", [True, False])
def test_the_judge_weighs_the_coreset_under_the_teacher_and_its_own_labels(fixture, monkeypatch, teacher_wins) -> None:
    """With a teacher, the herding histories are judged under the teacher's labels and under
    their own (``coreset_labels``), and the better kept. The judge scores a graph by the mean
    of all its labels: a teacher above every hard label (1.5) wins, one below them (-0.5) loses."""
    import t2g_lib.krr as krr
    from t2g_lib.teacher import TeacherLabels

    monkeypatch.setattr(krr.GNNJudge, "__call__", lambda self, g: float(np.mean(
        np.r_[g.y, [] if g.earlier is None else g.earlier.y])))
    db, features, pseudo, cents, structure, train, val = fixture
    teacher = TeacherLabels(np.full(len(train), 1.5 if teacher_wins else -0.5), "auroc", 0.5, 0.0, 2)
    task = TaskData("t", "binary_classification", "customers", "cust", "at", "y", train, val, val.iloc[:0])
    knobs = dict(steps=10, eval_every=5, lr=0.05, batch_size=64, pseudo_batch_size=32, pseudo_pool_batches=2,
                 num_neighbors=[4, 4], select="gnn", gnn_every=5, coreset_fallback="histories", labels="teacher")
    both = distill_features(structure, features, pseudo, cents, db, task, KRRConfig(**knobs), teacher=teacher)
    assert both.history["coreset_labels"] == ("teacher" if teacher_wins else "hard")
    assert (both.history["coreset_gnn_val"] == 1.5) == teacher_wins and 0 <= both.history["coreset_gnn_val"] <= 1.5
    only = distill_features(structure, features, pseudo, cents, db, task,
                            KRRConfig(**knobs, coreset_labels=["teacher"]), teacher=teacher)
    assert only.history["coreset_labels"] == "teacher"
    assert only.history["coreset_gnn_val"] == (1.5 if teacher_wins else -0.5)
    with pytest.raises(ValueError, match="train labels"):
        distill_features(structure, features, pseudo, cents, db, task, KRRConfig(**knobs, coreset_labels=["soft"]))


@pytest.mark.parametrize("prefers_coreset", [True, False])
def test_krr_concedes_to_a_coreset_the_gnn_prefers_by_more_than_the_margin(fixture, monkeypatch, prefers_coreset) -> None:
    """``concede``: the coreset is judged before the KRR steps, and KRR stops at the first
    judged step that trails it by more than the margin, keeping the coreset; with
    ``concede=None``, or a KRR graph the judge prefers, every step runs. KRR's start is
    judged only with ``gnn_first=0``. The judge scores a graph by its count of labelled
    examples, negated or not, as above."""
    import t2g_lib.krr as krr

    sign = -1.0 if prefers_coreset else 1.0
    monkeypatch.setattr(krr.GNNJudge, "__call__", lambda self, g: sign * len(g.y))
    knobs = dict(steps=20, eval_every=5, select="gnn", gnn_every=10, coreset_fallback="histories")
    _, hist = _distill(fixture, **knobs)
    _, patient = _distill(fixture, **knobs, concede=None)
    assert "conceded_at" not in patient and patient["val"][-1][0] == 20
    if prefers_coreset:
        assert hist["conceded_at"] == 10 and hist["val"][-1][0] == 10 and len(hist["loss"]) == 10
        assert {s for s, _ in hist["gnn_val"]} == {10} and hist["kept"] == patient["kept"] == "herding_histories"
        _, at_start = _distill(fixture, **knobs, gnn_first=0)
        assert {s for s, _ in at_start["gnn_val"]} == {0, 10} and at_start["conceded_at"] == 10
    else:
        assert "conceded_at" not in hist and hist["val"][-1][0] == 20 and hist["kept"] == "krr"


def test_concedes_reads_the_metric_direction() -> None:
    from t2g_lib.krr import concedes

    assert concedes(0.70, 0.80, 0.05, "binary_classification")  # AUROC 0.70 < 0.76
    assert not concedes(0.77, 0.80, 0.05, "binary_classification")
    assert concedes(30.0, 25.0, 0.05, "regression") and not concedes(26.0, 25.0, 0.05, "regression")  # MAE
    assert not concedes(0.1, 0.9, None, "binary_classification") and not concedes(0.1, float("nan"), 0.05, "binary_classification")
    assert concedes(float("nan"), 0.8, 0.05, "binary_classification")


def test_pseudo_tables_draws_that_many_tables_each_step(fixture, monkeypatch) -> None:
    """``pseudo_tables=1`` solves one table's pseudo-label term a step where 0 solves every
    table's; the draw is seeded, so a run repeats exactly."""
    import t2g_lib.krr as krr

    real, calls = krr._krr_weights, [0]

    def counting(k_ss, y_s, ridge):
        calls[0] += 1
        return real(k_ss, y_s, ridge)

    monkeypatch.setattr(krr, "_krr_weights", counting)
    solves = {}
    for n in (0, 1):
        calls[0] = 0
        _distill(fixture, steps=4, eval_every=2, pseudo_tables=n)
        solves[n] = calls[0] - 3  # validation solves once at the start, step 2 and step 4
    tables = solves[0] // 4 - 1  # a step: one task solve and one per table
    assert tables >= 2 and solves[1] == 4 * 2
    once, again = (_distill(fixture, steps=4, pseudo_tables=1)[1]["pseudo_loss"] for _ in range(2))
    assert once == again


def test_pseudo_tables_of_a_step() -> None:
    from t2g_lib.krr import _pseudo_tables

    sides = dict.fromkeys(["a", "b", "c", "d"])
    assert _pseudo_tables(sides, 0, np.random.default_rng(0)) == ["a", "b", "c", "d"]
    assert _pseudo_tables(sides, 9, np.random.default_rng(0)) == ["a", "b", "c", "d"]
    drawn = _pseudo_tables(sides, 2, np.random.default_rng(0))
    assert len(set(drawn)) == 2 and drawn == sorted(drawn)
    assert drawn == _pseudo_tables(sides, 2, np.random.default_rng(0))


def test_the_coreset_can_store_its_rows_in_fewer_components(fixture) -> None:
    """``feature_dim``: the herding coreset gets a codec of its own with that many components
    (its bytes counted) and fits the same budget with at least as many labelled examples."""
    db, features, pseudo, cents, structure, train, val = fixture
    task = TaskData("t", "binary_classification", "customers", "cust", "at", "y", train, val, val.iloc[:0])
    coded = structure.with_codec(FeatureCodec.fit(features, 4))
    budget = 4 * coded.nbytes()
    same = herding_coresets(db, features, coded, cents, {"y": task}, 0, budget, histories=True)[0, "y"]
    fewer = herding_coresets(db, features, coded, cents, {"y": task}, 0, budget, histories=True,
                             feature_dim=2)[0, "y"]
    assert {same.codec.dim(t) for t in features} == {4} and {fewer.codec.dim(t) for t in features} == {2}
    assert same.nbytes() <= budget and fewer.nbytes() <= budget
    assert fewer.num_examples() > same.num_examples()


def test_distillation_scores_on_a_seeded_sample_of_at_most_val_rows_labels(fixture) -> None:
    """``val_rows`` bounds the val labels the surrogate (and the judge) score on: a task with no
    more is untouched (same history as no cap), a larger one is scored on a seeded sample of
    that many, kept in order."""
    from t2g_lib.task_data import with_val_sample

    *_, train, val = fixture
    task = TaskData("t", "binary_classification", "customers", "cust", "at", "y", train, val, val.iloc[:0])
    assert with_val_sample(task, len(val), 0) is task and with_val_sample(task, None, 0) is task
    sample = with_val_sample(task, 7, 0)
    assert len(sample.val) == 7 and sample.train is task.train
    kept = val.reset_index(drop=True).merge(sample.val.reset_index(), on=list(val.columns))
    assert len(kept) == 7 and kept["index"].is_monotonic_increasing
    pd.testing.assert_frame_equal(with_val_sample(task, 7, 0).val, sample.val)
    uncapped = _distill(fixture, steps=4, eval_every=2, val_rows=None)[1]["val"]
    assert _distill(fixture, steps=4, eval_every=2, val_rows=len(val))[1]["val"] == uncapped
    assert _distill(fixture, steps=4, eval_every=2, val_rows=7)[1]["val"] != uncapped


def test_pool_rows_caps_the_train_rows_embedded_for_the_task_term(fixture, monkeypatch) -> None:
    """``pool_rows`` bounds the labelled rows embedded once for the task term: a task with no
    more is untouched (same losses as no cap), a smaller cap embeds that many."""
    import t2g_lib.krr as krr

    train = fixture[5]
    embedded = []

    def recording(sampler, table, rows, *args, **kwargs):
        embedded.append((table, len(rows)))
        return embed_real(sampler, table, rows, *args, **kwargs)

    embed_real = krr.embed_real
    monkeypatch.setattr(krr, "embed_real", recording)
    uncapped = _distill(fixture, steps=4, eval_every=2, pool_rows=None)[1]["loss"]
    assert embedded[0] == ("customers", len(train))  # the task pool is embedded first
    assert _distill(fixture, steps=4, eval_every=2, pool_rows=len(train))[1]["loss"] == uncapped
    embedded.clear()
    assert _distill(fixture, steps=4, eval_every=2, pool_rows=5)[1]["loss"] != uncapped
    assert embedded[0] == ("customers", 5)
