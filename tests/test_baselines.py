"""Coreset baselines: exact budget, real rows and labels, valid FK edges, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from test_models import ENTITY, EVENTS, ITEMS, TIME_COL, make_fixture, make_graph

from t2g_lib.baselines import (
    centroid_baseline, herding_coreset, kcenter_coreset, random_coreset, select_herding,
    select_kcenter,
)
from t2g_lib.graph import GraphSchema, SyntheticGraph, fkey_index
from t2g_lib.temporal import to_seconds

CORESETS = [random_coreset, kcenter_coreset, herding_coreset]


def _build(fn, fx, reference, seed=0) -> SyntheticGraph:
    return fn(fx.db, fx.features, reference, fx.task, seed)


def _row_of(features: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The real row each coreset feature vector was copied from."""
    match = (features[None, :, :] == x[:, None, :]).all(-1)
    assert match.any(1).all()
    return match.argmax(1)


@pytest.mark.parametrize("task_type", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("fn", CORESETS)
def test_coreset_matches_budget_exactly(fn, task_type: str) -> None:
    fx = make_fixture(task_type)
    reference = make_graph(fx, {ENTITY: 7, EVENTS: 20, ITEMS: 2})
    graph = _build(fn, fx, reference)
    assert graph.num_nodes() == reference.num_nodes()
    assert graph.nbytes() == reference.nbytes()
    assert np.asarray(graph.y).shape == np.asarray(reference.y).shape
    assert graph.schema.metadata() == reference.schema.metadata()


def test_multiclass_labels_are_one_hot_even_against_an_unlabelled_structure() -> None:
    fx = make_fixture("multiclass")
    structure = make_graph(fx)
    structure.y = np.zeros(structure.num_nodes()[ENTITY], dtype=np.float32)  # as the SBM leaves it
    graph = random_coreset(fx.db, fx.features, structure, fx.task)
    assert graph.y.shape == (structure.num_nodes()[ENTITY], 3)
    np.testing.assert_array_equal(graph.y.sum(1), 1.0)


@pytest.mark.parametrize("fn", CORESETS)
def test_coreset_holds_real_rows_labels_and_edges(fn) -> None:
    fx = make_fixture("binary")
    reference = make_graph(fx, {ENTITY: 8, EVENTS: 24, ITEMS: 3})
    graph = _build(fn, fx, reference, seed=4)
    again = _build(fn, fx, reference, seed=4)
    for t in graph.schema.tables:
        np.testing.assert_array_equal(graph.x[t], again.x[t])
    rows = {t: _row_of(fx.features[t], graph.x[t]) for t in graph.schema.tables}
    assert len(set(rows[EVENTS])) == len(rows[EVENTS])
    # Labels are the real labels of selected training examples; both classes are kept.
    labelled = set(zip(fx.train["user"], fx.train["y"]))
    assert all((int(u), int(y)) in labelled for u, y in zip(rows[ENTITY], graph.y))
    assert set(graph.y.tolist()) == {0.0, 1.0}
    # No event stamped after the last training label time.
    cutoff = to_seconds(fx.train["label time"]).max()
    assert (to_seconds(fx.db.table_dict[EVENTS].df[TIME_COL])[rows[EVENTS]] <= cutoff).all()
    # Every child has a valid parent; a selected true parent is kept.
    schema = GraphSchema.from_database(fx.db)
    for rel in schema.relations:
        par = graph.parents[rel.index]
        assert ((par >= 0) & (par < graph.num_nodes()[rel.parent])).all()
        true = fkey_index(fx.db, rel)[rows[rel.child]]
        kept = np.isin(true, rows[rel.parent])
        np.testing.assert_array_equal(rows[rel.parent][par[kept]], true[kept])


def test_kcenter_covers_and_herding_tracks_the_mean() -> None:
    rng = np.random.default_rng(0)
    line = np.linspace(0, 10, 101)[:, None]
    picks = select_kcenter(line, 3, np.random.default_rng(1))
    assert {0, 100} <= set(picks.tolist())
    x = rng.normal(size=(500, 4)) + np.array([3.0, 0, 0, 0])
    herd = select_herding(x, 10, np.random.default_rng(0))
    assert len(set(herd.tolist())) == 10
    herd_gap = np.linalg.norm(x[herd].mean(0) - x.mean(0))
    random_gaps = [
        np.linalg.norm(x[rng.choice(500, 10, replace=False)].mean(0) - x.mean(0)) for _ in range(50)
    ]
    assert herd_gap < np.percentile(random_gaps, 5)


def test_centroid_baseline_is_block_centroids_with_mean_block_labels() -> None:
    fx = make_fixture("regression")
    structure = make_graph(fx, {ENTITY: 6, EVENTS: 12, ITEMS: 2})
    structure.blocks = {ENTITY: np.array([0, 0, 1, 1, 2, 2]), EVENTS: np.arange(12) % 2}
    centroids = {ENTITY: np.eye(3, 8, dtype=np.float32), EVENTS: np.ones((2, 8), np.float32)}
    clusters = np.arange(len(fx.features[ENTITY])) % 3
    graph = centroid_baseline(structure, centroids, clusters, fx.task)
    np.testing.assert_allclose(graph.x[ENTITY], centroids[ENTITY][structure.blocks[ENTITY]])
    block_of_label = clusters[fx.train["user"].to_numpy()]
    for b in range(3):
        want = fx.train["y"].to_numpy()[block_of_label == b].mean()
        np.testing.assert_allclose(graph.y[structure.blocks[ENTITY] == b], want, rtol=1e-5)
    assert graph.nbytes() == structure.nbytes()
