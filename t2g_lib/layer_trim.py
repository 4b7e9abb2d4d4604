"""Full-batch message passing cut to what the labelled seeds read.

A distilled graph trains full-batch, but the loss reads the last layer only at its labelled
seeds. A row ``d`` hops from the nearest seed matters to the first ``L - d`` of the model's
``L`` layers and to none after; a row farther than ``L`` hops never matters. So rows are
ordered by that distance, and layer ``l`` (from 1) reads, per node type, only the leading
rows within ``L - l + 1`` hops and only the edges into rows within ``L - l`` hops, as PyG's
``trim_to_layer`` cuts a sampled subgraph hop by hop. The seeds' outputs are the same as on
the whole graph (``tests/test_layer_trim.py``); on a history graph (``seed_views.unroll``)
most edge types drop out of the last layer, which is where the time went.

Attention that pools over every node of a type (HAN's semantic attention) would see fewer
nodes, so only SAGE and HGT get the per-layer cut (``CUTS_EXACT_FOR``). A mini-batch of a
distilled graph's examples (``batch_inputs``) is still cut to its seeds' reach for HAN, with
every layer on every row kept: that is how HAN reads a sampled subgraph of real seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

EdgeType = tuple[str, str, str]
CUTS_EXACT_FOR = ("sage", "hgt")


def hop_distance(edge_index: dict[EdgeType, tuple[np.ndarray, np.ndarray]], sizes: dict[str, int], seed_type: str,
                 seeds: np.ndarray, hops: int) -> dict[str, np.ndarray]:
    """Per node type, how many message-passing steps each row's state takes to reach a seed
    (0 for the seeds themselves); ``hops + 1`` for rows that do not reach one within ``hops``."""
    dist = {nt: np.full(n, hops + 1, dtype=np.int64) for nt, n in sizes.items()}
    dist[seed_type][np.asarray(seeds, dtype=np.int64)] = 0
    for d in range(1, hops + 1):
        for (src_t, _, dst_t), (src, dst) in edge_index.items():
            hit = src[dist[dst_t][dst] == d - 1]
            dist[src_t][hit] = np.minimum(dist[src_t][hit], d)
    return dist


@dataclass
class LayerCut:
    """What one layer reads: the leading ``size[nt]`` rows of each node type and the edges
    into rows a later layer (or the head) still reads."""

    size: dict[str, int]
    edge_index: dict[EdgeType, torch.Tensor]


@dataclass
class TrimmedGraph:
    """A model's inputs for the outputs at ``seed``: with ``layers``, the graph reordered by
    distance to the seeds, only the rows within reach, one ``LayerCut`` per layer (and no
    whole-graph ``edge_index``); without, the graph as given."""

    x: dict[str, torch.Tensor]
    edge_index: dict[EdgeType, torch.Tensor]
    ages: dict[str, torch.Tensor] | None
    seed: torch.Tensor
    layers: list[LayerCut] | None

    def to(self, device) -> TrimmedGraph:
        """The same inputs on ``device``."""
        move = lambda d: None if d is None else {k: v.to(device) for k, v in d.items()}  # noqa: E731
        layers = None if self.layers is None else [LayerCut(c.size, move(c.edge_index)) for c in self.layers]
        return TrimmedGraph(move(self.x), move(self.edge_index), move(self.ages), self.seed.to(device), layers)

    def outputs(self, model, seed_type: str) -> torch.Tensor:
        """``model``'s raw outputs at the seeds, in ``seed`` order."""
        return model(self.x, self.edge_index, seed_type, None, self.ages, self.layers)[self.seed]


def model_inputs(
    model_name: str, x: dict[str, torch.Tensor], edge_index: dict[EdgeType, torch.Tensor],
    ages: dict[str, torch.Tensor] | None, seed_type: str, seeds: torch.Tensor, num_layers: int,
) -> TrimmedGraph:
    """``trim_to_seeds`` for a model the cut is exact for (``CUTS_EXACT_FOR``), else the
    graph as given."""
    if model_name in CUTS_EXACT_FOR:
        return trim_to_seeds(x, edge_index, ages, seed_type, seeds, num_layers)
    return TrimmedGraph(x, edge_index, ages, seeds, None)


def batch_inputs(
    model_name: str, x: dict[str, torch.Tensor], edge_index: dict[EdgeType, torch.Tensor],
    ages: dict[str, torch.Tensor] | None, seed_type: str, seeds: torch.Tensor, num_layers: int,
) -> TrimmedGraph:
    """The inputs of one mini-batch of ``seeds``: ``model_inputs`` where the cut is exact,
    else the rows within ``num_layers`` hops of the seeds and the edges into rows within
    ``num_layers - 1`` (a sampled subgraph's shape), uncut per layer."""
    if model_name in CUTS_EXACT_FOR:
        return model_inputs(model_name, x, edge_index, ages, seed_type, seeds, num_layers)
    cut = trim_to_seeds(x, edge_index, ages, seed_type, seeds, num_layers)
    return TrimmedGraph(cut.x, cut.layers[0].edge_index, cut.ages, cut.seed, None)


def trim_to_seeds(
    x: dict[str, torch.Tensor], edge_index: dict[EdgeType, torch.Tensor], ages: dict[str, torch.Tensor] | None,
    seed_type: str, seeds: torch.Tensor, num_layers: int,
) -> TrimmedGraph:
    """Reorder and cut ``x`` / ``edge_index`` / ``ages`` for a ``num_layers``-layer model
    whose output is read at ``seeds`` (rows of ``seed_type``, repeats allowed)."""
    sizes = {nt: int(v.shape[0]) for nt, v in x.items()}
    ei_np = {et: (ei[0].cpu().numpy(), ei[1].cpu().numpy()) for et, ei in edge_index.items()}
    seeds_np = seeds.cpu().numpy().astype(np.int64)
    dist = hop_distance(ei_np, sizes, seed_type, seeds_np, num_layers)
    new_id, order = {}, {}
    for nt, d in dist.items():
        keep = np.flatnonzero(d <= num_layers)
        order[nt] = keep[np.argsort(d[keep], kind="stable")]
        new_id[nt] = np.full(sizes[nt], -1, dtype=np.int64)
        new_id[nt][order[nt]] = np.arange(len(order[nt]))
    dev = seeds.device
    layers = []
    for layer in range(1, num_layers + 1):
        reads, writes = num_layers - layer + 1, num_layers - layer
        size = {nt: int((d <= reads).sum()) for nt, d in dist.items()}
        cut = {}
        for et, (src, dst) in ei_np.items():
            into = dist[et[2]][dst] <= writes
            if into.any():
                cut[et] = torch.as_tensor(np.stack([new_id[et[0]][src[into]], new_id[et[2]][dst[into]]]), device=dev)
        layers.append(LayerCut({nt: n for nt, n in size.items() if n}, cut))
    pick = {nt: torch.as_tensor(o, device=dev) for nt, o in order.items()}
    return TrimmedGraph(
        {nt: v[pick[nt]] for nt, v in x.items()},
        {},
        None if ages is None else {nt: a[pick[nt]] for nt, a in ages.items()},
        torch.as_tensor(new_id[seed_type][seeds_np], device=dev),
        layers,
    )
