"""Layer cuts: a model reads the same outputs at its seeds with each layer cut to what reaches
them, on a plain distilled graph and on an unrolled history, while the cut graph is smaller."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models import ENTITY, make_fixture, make_graph
from test_seed_views import SPEC, _histories

from t2g_lib.layer_trim import CUTS_EXACT_FOR, batch_inputs, hop_distance, trim_to_seeds
from t2g_lib.models import build_model
from t2g_lib.seed_views import seed_groups, unroll
from t2g_lib.temporal import TemporalSampler, age_days
from t2g_lib.train import SampledSplit


def _ages(data) -> dict[str, torch.Tensor]:
    return {nt: data[nt].age for nt in data.node_types if "age" in data[nt]}


def _same_at_seeds(name: str, schema, x, edge_index, ages, seed_type, seeds, layers: int):
    torch.manual_seed(0)
    model = build_model(name, schema.metadata(), 8, SPEC.hidden, 1, layers, SPEC.aggr, ages is not None).eval()
    cut = trim_to_seeds(x, edge_index, ages, seed_type, seeds, layers)
    with torch.no_grad():
        whole = model(x, edge_index, seed_type, None, ages)[seeds]
        trimmed = model(cut.x, edge_index, seed_type, None, cut.ages, cut.layers)[cut.seed]
    torch.testing.assert_close(trimmed, whole, rtol=1e-5, atol=1e-5)
    return cut


@pytest.mark.parametrize("name", CUTS_EXACT_FOR)
@pytest.mark.parametrize("layers", [2, 3])
def test_cut_layers_give_the_seeds_the_same_outputs_on_a_plain_graph(name: str, layers: int) -> None:
    graph = make_graph(make_fixture("binary"))
    data = graph.to_hetero()
    seed_type = graph.schema.node_type(ENTITY)
    seeds = torch.tensor([4, 1, 4, 7])  # a subset, with a repeat
    cut = _same_at_seeds(name, graph.schema, data.x_dict, data.edge_index_dict, None, seed_type, seeds, layers)
    if layers == 2:  # users other than the seeds are 4 or more steps away: dropped
        assert cut.x[seed_type].shape[0] == 3
        assert set(cut.layers[-1].edge_index) == {et for et in data.edge_types if et[2] == seed_type}


@pytest.mark.parametrize("name", CUTS_EXACT_FOR)
def test_cut_layers_give_every_example_of_a_history_the_same_output(name: str) -> None:
    *_, graph = _histories([0, 1, 2, 3, 4])
    data = graph.to_hetero()
    seed_type = graph.schema.node_type(ENTITY)
    ex = unroll(data.x_dict, data.edge_index_dict, _ages(data), seed_groups(graph), seed_type,
                list(SPEC.num_neighbors), SPEC.num_layers)
    cut = _same_at_seeds(name, graph.schema, ex.x, ex.edge_index, ex.ages, seed_type, ex.seed, SPEC.num_layers)
    last = sum(ei.shape[1] for ei in cut.layers[-1].edge_index.values())
    assert last < sum(ei.shape[1] for ei in ex.edge_index.values())


def test_hop_distance_counts_message_steps_to_the_nearest_seed() -> None:
    # a -> b -> seed, c -> a; d isolated
    edges = {("t", "r", "t"): (np.array([0, 1, 2]), np.array([1, 3, 0]))}
    dist = hop_distance(edges, {"t": 5}, "t", np.array([3]), hops=2)["t"]
    np.testing.assert_array_equal(dist, [2, 1, 3, 0, 3])


@pytest.mark.parametrize("name", ["sage", "han"])
def test_a_sampled_split_predicts_as_the_model_reads_each_whole_subgraph(name: str) -> None:
    fx = make_fixture("binary")
    split = SampledSplit(TemporalSampler(fx.db, list(SPEC.num_neighbors)), fx.features, fx.val, fx.task, batch_size=16)
    seed_type = split.seed_type
    torch.manual_seed(0)
    model = build_model(name, split.batches[0][1].metadata(), 8, SPEC.hidden, 1, 2, SPEC.aggr, True).eval()
    model.set_task("binary")
    outs = []
    with torch.no_grad():
        for n, batch in split.batches:
            sub = split.with_features(batch)
            outs.append(model(sub.x_dict, sub.edge_index_dict, seed_type, n, age_days(sub)))
    np.testing.assert_allclose(split.predict(model, "cpu"), torch.sigmoid(torch.cat(outs).view(-1)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert (split.inputs(model)[0].layers is None) == (name not in CUTS_EXACT_FOR)
    # The split keeps node ids only: the features live once, in the inputs models read.
    assert all(v.shape[1] == 0 for _, batch in split.batches for v in batch.x_dict.values())


def test_a_batch_for_han_is_its_seeds_reach_uncut_per_layer() -> None:
    """``batch_inputs``: SAGE and HGT get the per-layer cut; HAN gets the rows within reach of
    the batch's seeds and the edges into rows a later layer reads, all layers on all of them,
    as it reads a sampled subgraph. Its outputs at the seeds are finite and take every seed."""
    fx = make_fixture("binary")
    split = SampledSplit(TemporalSampler(fx.db, list(SPEC.num_neighbors)), fx.features, fx.val, fx.task, batch_size=64)
    n, sub = split.batches[0][0], split.with_features(split.batches[0][1])
    seed_type, ages = split.seed_type, age_days(sub)
    seeds = torch.arange(0, n, 2)
    torch.manual_seed(0)
    model = build_model("han", sub.metadata(), 8, SPEC.hidden, 1, 2, SPEC.aggr, True).eval()
    cut = batch_inputs("han", sub.x_dict, sub.edge_index_dict, ages, seed_type, seeds, 2)
    assert cut.layers is None and len(cut.seed) == len(seeds)
    reach = hop_distance({et: (e[0].numpy(), e[1].numpy()) for et, e in sub.edge_index_dict.items()},
                         {nt: int(v.shape[0]) for nt, v in sub.x_dict.items()}, seed_type, seeds.numpy(), 2)
    assert {nt: int(v.shape[0]) for nt, v in cut.x.items()} == {nt: int((d <= 2).sum()) for nt, d in reach.items()}
    assert sum(e.shape[1] for e in cut.edge_index.values()) <= sum(e.shape[1] for e in sub.edge_index_dict.values())
    with torch.no_grad():
        assert torch.isfinite(cut.outputs(model, seed_type)).all()
    assert batch_inputs("sage", sub.x_dict, sub.edge_index_dict, ages, seed_type, seeds, 2).layers is not None


def test_edges_grouped_by_destination_give_the_same_cut() -> None:
    """A graph cut for many mini-batches reads the edges into each batch's reach through
    ``EdgesByDst``: every batch gets exactly the rows, order and edges of a pass over all edges."""
    from t2g_lib.layer_trim import EdgesByDst

    *_, graph = _histories([0, 1, 2, 3, 4])
    data = graph.to_hetero()
    seed_type = graph.schema.node_type(ENTITY)
    ex = unroll(data.x_dict, data.edge_index_dict, _ages(data), seed_groups(graph), seed_type,
                list(SPEC.num_neighbors), SPEC.num_layers)
    by_dst = EdgesByDst({et: (e[0].numpy(), e[1].numpy()) for et, e in ex.edge_index.items()},
                        {nt: v.shape[0] for nt, v in ex.x.items()})
    for seeds in (ex.seed[:3], ex.seed[2::2], ex.seed):
        a = trim_to_seeds(ex.x, ex.edge_index, ex.ages, seed_type, seeds, SPEC.num_layers)
        b = trim_to_seeds(ex.x, ex.edge_index, ex.ages, seed_type, seeds, SPEC.num_layers, by_dst)
        assert torch.equal(a.seed, b.seed) and a.x.keys() == b.x.keys()
        assert all(torch.equal(a.x[nt], b.x[nt]) for nt in a.x) and a.ages.keys() == b.ages.keys()
        for nt in a.ages:  # untimed rows' ages are NaN
            torch.testing.assert_close(b.ages[nt], a.ages[nt], rtol=0, atol=0, equal_nan=True)
        for la, lb in zip(a.layers, b.layers):
            assert la.size == lb.size and la.edge_index.keys() == lb.edge_index.keys()
            assert all(torch.equal(la.edge_index[et], lb.edge_index[et]) for et in la.edge_index)
    assert sum(len(c.edge_index) for c in a.layers) > 0
