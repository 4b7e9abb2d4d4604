"""Histories: one stored history per entity serves every label it has, and a model reads
each earlier example exactly as it reads that example sampled from the real database."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models import ENTITY, make_fixture, make_graph

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.baselines import SELECTORS
from t2g_lib.graph import SyntheticGraph
from t2g_lib.models import ModelSpec, build_model
from t2g_lib.seed_views import seed_groups, unroll
from t2g_lib.subgraph_coreset import subgraph_coreset, trees_to_histories
from t2g_lib.temporal import TemporalSampler, age_days, to_seconds
from t2g_lib.train import as_feature_tensors, train_distilled

SPEC = ModelSpec(hidden=16, num_neighbors=(4, 4))


def _histories(users: list[int]):
    fx = make_fixture("binary")
    train = fx.train[fx.train["user"].isin(users)].reset_index(drop=True)
    sampler = TemporalSampler(fx.db, list(SPEC.num_neighbors))
    feats = as_feature_tensors(fx.features)
    ent, times = train["user"].to_numpy(), to_seconds(train["label time"])
    sub = sampler.sample(ENTITY, ent, times, feats)
    return fx, sampler, feats, ent, times, trees_to_histories(sub, sampler.schema, ENTITY, ent, train["y"].to_numpy(), feats)


def test_a_history_holds_each_entity_once_and_its_other_labels_as_earlier_seeds(tmp_path) -> None:
    fx, _, _, ent, times, graph = _histories([0, 1, 2])
    assert len(graph.y) == 3 and len(graph.earlier) == len(ent) - 3 and graph.num_examples() == len(ent)
    np.testing.assert_allclose(np.sort(graph.earlier.shift), np.sort([15, 15, 15, 30, 30, 30]))  # days 30, 45 before 60
    assert graph.nbytes() == SyntheticGraph(graph.schema, ENTITY, graph.x, graph.parents, graph.y,
                                            age=graph.age).nbytes() + 12 * len(ent[3:])
    again = SyntheticGraph.load(graph.save(tmp_path / "g"))
    np.testing.assert_array_equal(again.earlier.shift, graph.earlier.shift)
    np.testing.assert_array_equal(again.earlier.y, graph.earlier.y)


def test_every_example_of_a_history_reads_what_the_sampler_draws_for_it() -> None:
    """The unrolled history and the real temporal samples give one model equal outputs."""
    fx, sampler, feats, ent, times, graph = _histories([0, 1, 2, 3, 4])
    schema = graph.schema
    seed_type = schema.node_type(ENTITY)
    torch.manual_seed(0)
    model = build_model("sage", schema.metadata(), 8, SPEC.hidden, 1, SPEC.num_layers, SPEC.aggr, True).eval()
    data = graph.to_hetero()
    groups = seed_groups(graph)
    ex = unroll(data.x_dict, data.edge_index_dict, {nt: data[nt].age for nt in data.node_types if "age" in data[nt]},
                groups, seed_type, list(SPEC.num_neighbors), SPEC.num_layers)
    with torch.no_grad():
        got = model(ex.x, ex.edge_index, seed_type, None, ex.ages)[ex.seed]
    users = np.unique(ent)  # target nodes come in this order
    anchor = np.array([times[ent == u].max() for u in users])
    who = np.concatenate([g.node for g in groups])
    when = np.concatenate([anchor[g.node] - np.round(g.shift * 86400).astype(np.int64) for g in groups])
    assert sorted(zip(users[who], when)) == sorted(zip(ent, times))  # every label, once
    sub = sampler.sample(ENTITY, users[who], when, feats)
    with torch.no_grad():
        want = model(sub.x_dict, sub.edge_index_dict, seed_type, len(who), age_days(sub))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("task_type", ["binary", "multiclass", "regression"])
def test_a_histories_coreset_fits_the_budget_with_more_labels_than_subgraphs(task_type: str) -> None:
    fx = make_fixture(task_type)
    reference = make_graph(fx, {ENTITY: 7, "order by.évènements": 20, "type": 2})
    hist = subgraph_coreset(SELECTORS["herding_subgraphs"], fx.db, fx.features, reference, fx.task, 0, SPEC,
                            histories=True)
    plain = subgraph_coreset(SELECTORS["herding_subgraphs"], fx.db, fx.features, reference, fx.task, 0, SPEC)
    assert 0 < hist.nbytes() <= reference.nbytes()
    assert len(hist.y) + len(hist.earlier) > len(plain.y)
    shape = np.asarray(hist.earlier.y).shape
    assert shape == ((len(hist.earlier), 3) if task_type == "multiclass" else (len(hist.earlier),))
    result = train_distilled("sage", hist, DistilledRecipe(steps=3), task_type=fx.task.task_type, spec=SPEC)
    assert np.isfinite(result.losses).all()


def test_mini_batches_of_a_histories_graph_train_deterministically() -> None:
    """``DistilledRecipe.batch_size``: a batch covering every example is the full-batch step
    exactly; smaller batches take one step each, the same ones for one seed, cycling over
    every batch before any is read again."""
    fx = make_fixture("binary")
    reference = make_graph(fx, {ENTITY: 7, "order by.évènements": 20, "type": 2})
    hist = subgraph_coreset(SELECTORS["herding_subgraphs"], fx.db, fx.features, reference, fx.task, 0, SPEC,
                            histories=True)
    n = hist.num_examples()
    full = train_distilled("sage", hist, DistilledRecipe(steps=4, batch_size=None), task_type="binary", spec=SPEC)
    whole = train_distilled("sage", hist, DistilledRecipe(steps=4, batch_size=n), task_type="binary", spec=SPEC)
    for a, b in zip(full.model.state_dict().values(), whole.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    small = [train_distilled("sage", hist, DistilledRecipe(steps=4, batch_size=max(n // 3, 1)), task_type="binary",
                             spec=SPEC) for _ in range(2)]
    assert np.isfinite(small[0].losses).all() and small[0].losses == small[1].losses
    assert small[0].losses != full.losses


def test_han_trains_on_mini_batches_of_a_histories_graph() -> None:
    """HAN, whose batches are its seeds' reach uncut per layer (``batch_inputs``), trains on
    them deterministically, and not as it trains on the whole graph."""
    fx = make_fixture("binary")
    reference = make_graph(fx, {ENTITY: 7, "order by.évènements": 20, "type": 2})
    hist = subgraph_coreset(SELECTORS["herding_subgraphs"], fx.db, fx.features, reference, fx.task, 0, SPEC,
                            histories=True)
    recipe = DistilledRecipe(steps=4, batch_size=max(hist.num_examples() // 3, 1), han_batch_size=None)
    runs = [train_distilled("han", hist, recipe, task_type="binary", spec=SPEC) for _ in range(2)]
    assert np.isfinite(runs[0].losses).all() and runs[0].losses == runs[1].losses
    whole = train_distilled("han", hist, DistilledRecipe(steps=4, batch_size=None, han_batch_size=None),
                            task_type="binary", spec=SPEC)
    own = DistilledRecipe(steps=4, batch_size=None, han_batch_size=max(hist.num_examples() // 3, 1))
    assert train_distilled("han", hist, own, task_type="binary", spec=SPEC).losses == runs[0].losses
    assert runs[0].losses != whole.losses
