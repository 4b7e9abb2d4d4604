"""Fixed, parameter-free heterogeneous propagation: the representation KRR distils with.

The same function runs on a sampled real subgraph (``temporal.TemporalSampler``) and on the
whole synthetic graph with learnable features, so real and synthetic rows are embedded by
one map and the synthetic side stays differentiable w.r.t. its node features.
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData
from torch_geometric.utils import scatter


def _layers(
    data: HeteroData, hops: int, wanted: set[str] | None = None
) -> dict[str, list[torch.Tensor]]:
    """``[h^0, ..., h^hops]`` per node type in ``wanted`` (default: all; see ``propagate``).

    The last hop only feeds the wanted types, so it is computed for them alone.
    """
    h = {nt: data[nt].x for nt in data.node_types}
    layers = {nt: [x] for nt, x in h.items()}
    for k in range(hops):
        targets = set(h) if wanted is None or k < hops - 1 else wanted
        total = {nt: h[nt] for nt in targets}  # self term; updated out of place, h untouched
        terms = {nt: h[nt].new_ones(h[nt].shape[0], 1) for nt in targets}  # self + relations
        for src, rel, dst in data.edge_types:
            ei = data[src, rel, dst].edge_index
            if dst not in targets or ei.numel() == 0:
                continue
            n_dst = h[dst].shape[0]
            msg = h[src].index_select(0, ei[0])
            summed = scatter(msg, ei[1], dim=0, dim_size=n_dst, reduce="sum")
            ones = msg.new_ones(ei.shape[1], 1)
            deg = scatter(ones, ei[1], dim=0, dim_size=n_dst, reduce="sum")
            total[dst] = total[dst] + summed / deg.clamp(min=1)
            terms[dst] = terms[dst] + (deg > 0).to(h[dst].dtype)
        h = {nt: total[nt] / terms[nt] for nt in targets}
        for nt, x in h.items():
            layers[nt].append(x)
    return {nt: xs for nt, xs in layers.items() if wanted is None or nt in wanted}


def propagate_all(data: HeteroData, hops: int) -> dict[str, torch.Tensor]:
    """``concat(h^0..h^hops)`` for every node type (see ``propagate``)."""
    return {nt: torch.cat(xs, dim=1) for nt, xs in _layers(data, hops).items()}


def propagate(
    data: HeteroData, hops: int, seed_type: str, num_seeds: int | None = None
) -> torch.Tensor:
    """Rows of ``concat(h^0..h^hops)`` for the first ``num_seeds`` nodes of ``seed_type``.

    ``h^0 = x``; ``h^{k+1}[v]`` is the mean of ``h^k[v]`` and, for every incoming edge type
    under which ``v`` has at least one neighbour, the mean of those neighbours' ``h^k``. A
    relation a node has no neighbours under does not dilute the mean (a timeless customer
    with no orders yet keeps its own features rather than being pulled towards zero).
    """
    layers = _layers(data, hops, {seed_type})[seed_type]
    return torch.cat([h if num_seeds is None else h[:num_seeds] for h in layers], dim=1)
