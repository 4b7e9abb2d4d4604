"""Baselines: subgraph coresets within budget, holding the sampled neighbourhoods of real
labelled examples; the selectors; the centroid start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_models import ENTITY, EVENTS, ITEMS, TIME_COL, make_fixture, make_graph

from t2g_lib.baselines import SELECTORS, centroid_baseline
from t2g_lib.graph import GraphSchema, fkey_index
from t2g_lib.krr_start import THIN_MIN_GAIN, herding_coresets
from t2g_lib.models import ModelSpec
from t2g_lib.selectors import select_herding, select_kcenter
from t2g_lib.subgraph_coreset import history_entity_gain, spread_examples, subgraph_coreset, trees_to_graph
from t2g_lib.temporal import TemporalSampler, to_seconds
from t2g_lib.train import as_feature_tensors

SPEC = ModelSpec(num_neighbors=(4, 4))


def _row_of(features: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The real row each coreset feature vector was copied from."""
    match = (features[None, :, :] == x[:, None, :]).all(-1)
    assert match.any(1).all()
    return match.argmax(1)


@pytest.mark.parametrize("task_type", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_subgraph_coreset_fits_the_budget_and_the_task(name: str, task_type: str) -> None:
    fx = make_fixture(task_type)
    reference = make_graph(fx, {ENTITY: 7, EVENTS: 20, ITEMS: 2})
    graph = subgraph_coreset(SELECTORS[name], fx.db, fx.features, reference, fx.task, 0, SPEC)
    again = subgraph_coreset(SELECTORS[name], fx.db, fx.features, reference, fx.task, 0, SPEC)
    assert 0 < graph.nbytes() <= reference.nbytes()
    n = graph.num_nodes()[ENTITY]
    assert n >= 1 and np.asarray(graph.y).shape == ((n, 3) if task_type == "multiclass" else (n,))
    assert graph.schema.metadata() == reference.schema.metadata()
    for t in graph.schema.tables:
        np.testing.assert_array_equal(graph.x[t], again.x[t])  # same seed, same coreset


def test_a_selector_of_small_examples_still_fills_the_budget() -> None:
    """The probe guesses an example's bytes from random ones; examples chosen smaller than
    that must not leave the budget half empty (k-center did, on grocery households)."""
    fx = make_fixture("binary")
    early = fx.train.copy()  # a third of the examples at day 1: next to no history, tiny subtrees
    early.loc[early.index % 3 == 0, "label time"] = early["label time"].min() - pd.Timedelta(days=29)
    fx = replace(fx, train=early)
    sampler = TemporalSampler(fx.db, list(SPEC.num_neighbors))
    feats = as_feature_tensors(fx.features)
    users, times = fx.train["user"].to_numpy(), to_seconds(fx.train["label time"])
    size = np.array([
        trees_to_graph(sampler.sample(ENTITY, users[i:i + 1], times[i:i + 1], feats), sampler.schema, ENTITY, 1,
                       fx.train["y"].to_numpy()[i:i + 1], feats).nbytes()
        for i in range(len(users))
    ])
    smallest_first = np.argsort(size, kind="stable")
    reference = make_graph(fx, {ENTITY: 7, EVENTS: 20, ITEMS: 2})
    graph = subgraph_coreset(lambda x, k, rng: smallest_first[:k], fx.db, fx.features, reference, fx.task, 0, SPEC)
    n = graph.num_nodes()[ENTITY]
    assert size[smallest_first[: n + 1]].sum() > 0.9 * reference.nbytes() or n == len(users)


def test_spread_examples_keeps_the_latest_and_spreads_the_rest() -> None:
    entity = np.array([1, 1, 1, 1, 1, 2, 2, 3])
    time = np.array([5, 1, 4, 2, 3, 9, 8, 7])
    np.testing.assert_array_equal(spread_examples(entity, time, None), np.ones(8, dtype=bool))
    # entity 1 at times 1..5 keeps 1, 3, 5; entities 2 and 3 have no more than 3
    np.testing.assert_array_equal(spread_examples(entity, time, 3), [1, 1, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(spread_examples(entity, time, 1), [1, 0, 0, 0, 0, 1, 0, 1])  # the latest
    with pytest.raises(ValueError, match="examples_per_entity"):
        spread_examples(entity, time, 0)


def test_histories_with_fewer_label_times_hold_more_entities_in_the_same_bytes() -> None:
    """Each of a user's three label times reads rows of its own; one label time per history
    reads fewer rows, so the same budget holds more users, each with one example."""
    fx = make_fixture("binary")
    reference = make_graph(fx, {ENTITY: 7, EVENTS: 20, ITEMS: 2})
    every = subgraph_coreset(select_herding, fx.db, fx.features, reference, fx.task, 0, SPEC, histories=True)
    latest = subgraph_coreset(select_herding, fx.db, fx.features, reference, fx.task, 0, SPEC, histories=True,
                              examples_per_entity=1)
    assert every.nbytes() <= reference.nbytes() and latest.nbytes() <= reference.nbytes()
    assert latest.num_nodes()[ENTITY] > every.num_nodes()[ENTITY]
    assert latest.num_examples() == latest.num_nodes()[ENTITY] < every.num_examples()


@pytest.mark.parametrize("times_read_apart", [True, False])
def test_thinner_histories_are_candidates_only_where_they_hold_more_entities(times_read_apart: bool) -> None:
    """With label times between the events each reads rows of its own, so one label time a
    history holds more users in the same bytes and is a candidate beside whole histories;
    with every label time after the last event all read the same rows, and it is not."""
    fx = make_fixture("binary")
    if not times_read_apart:
        late = fx.train.copy()
        late["label time"] = late["label time"] + pd.Timedelta(days=200)
        fx = replace(fx, train=late)
    reference = make_graph(fx, {ENTITY: 7, EVENTS: 20, ITEMS: 2})
    budget = reference.nbytes()
    gain = history_entity_gain(fx.db, fx.features, reference, fx.task, 1, budget, 0, SPEC)
    assert (gain >= THIN_MIN_GAIN) == times_read_apart
    # in bytes that hold every user's whole history, thinner ones hold no more users
    assert history_entity_gain(fx.db, fx.features, reference, fx.task, 1, 100 * budget, 0, SPEC) == 1.0
    found = herding_coresets(fx.db, fx.features, reference, {}, {"y": fx.task}, 0, budget, spec=SPEC,
                             histories=True, label_times=(0, 1))
    assert sorted(found) == ([(0, "y"), (1, "y")] if times_read_apart else [(0, "y")])
    assert all(g.nbytes() <= budget for g in found.values())
    if times_read_apart:
        assert found[1, "y"].num_examples() == found[1, "y"].num_nodes()[ENTITY] > found[0, "y"].num_nodes()[ENTITY]
    alone = herding_coresets(fx.db, fx.features, reference, {}, {"y": fx.task}, 0, budget, spec=SPEC,
                             histories=True, label_times=(1,))
    assert sorted(alone) == [(1, "y")]  # without whole histories to fall back on, no gain is asked


def test_each_labelling_labels_the_same_examples() -> None:
    """``herding_coresets`` with two labellings of the train examples (a teacher's and their
    own): the first chooses the examples, each gets a graph of them with its labels."""
    fx = make_fixture("binary")
    reference = make_graph(fx, {ENTITY: 7, EVENTS: 20, ITEMS: 2})
    flipped = replace(fx, train=fx.train.assign(y=1 - fx.train["y"])).task
    found = herding_coresets(fx.db, fx.features, reference, {}, {"teacher": fx.task, "hard": flipped}, 0,
                             reference.nbytes(), spec=SPEC, histories=True)
    own, other = found[0, "teacher"], found[0, "hard"]
    for t in own.x:
        np.testing.assert_array_equal(own.x[t], other.x[t])
    np.testing.assert_array_equal(other.y, 1 - own.y)
    np.testing.assert_array_equal(other.earlier.y, 1 - own.earlier.y)
    np.testing.assert_array_equal(other.earlier.shift, own.earlier.shift)


def test_each_example_keeps_its_sampled_temporal_neighbourhood() -> None:
    fx = make_fixture("binary")
    sampler = TemporalSampler(fx.db, [4, 4])
    picks = np.array([0, 5, 50])
    train = fx.train.iloc[picks]
    users, times = train["user"].to_numpy(), to_seconds(train["label time"])
    feats = as_feature_tensors(fx.features)
    sub = sampler.sample(ENTITY, users, times, feats)
    graph = trees_to_graph(sub, sampler.schema, ENTITY, len(picks), train["y"].to_numpy(), feats)
    rows = {t: _row_of(fx.features[t], graph.x[t]) for t in graph.schema.tables}
    assert rows[ENTITY].tolist() == users.tolist()  # only the labelled examples, in order
    np.testing.assert_array_equal(graph.y, train["y"].to_numpy())
    event_time = to_seconds(fx.db.table_dict[EVENTS].df[TIME_COL])
    schema = GraphSchema.from_database(fx.db)
    to_user = next(r for r in schema.relations if r.child == EVENTS and r.parent == ENTITY)
    to_item = next(r for r in schema.relations if r.child == EVENTS and r.parent == ITEMS)
    owner = graph.parents[to_user.index]
    for i, (user, t) in enumerate(zip(users, times)):
        mine = rows[EVENTS][owner == i]
        visible = np.flatnonzero((fkey_index(fx.db, to_user) == user) & (event_time <= t))
        latest = visible[np.argsort(event_time[visible], kind="stable")][-4:]
        assert sorted(mine.tolist()) == sorted(latest.tolist())  # the 4 most recent by T
        ages = graph.age[EVENTS][owner == i]
        np.testing.assert_allclose(ages, (t - event_time[mine]) / 86400.0, rtol=1e-6)
    # Each event keeps its true item; items are timeless.
    item_rows = rows[ITEMS][graph.parents[to_item.index]]
    np.testing.assert_array_equal(item_rows, fkey_index(fx.db, to_item)[rows[EVENTS]])
    assert np.isnan(graph.age[ITEMS]).all()
    assert pd.Series(graph.parents[to_user.index]).between(0, len(picks) - 1).all()


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
