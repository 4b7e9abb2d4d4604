"""Fixed, parameter-free heterogeneous propagation: the representation KRR distils with.

The same step (``hop``) runs on a sampled real subgraph (``temporal.TemporalSampler``,
``propagate``) and on the synthetic graph with learnable features (and learnable row ages),
cut to the rows a KRR step reads (``propagate_cut``), so real and synthetic rows are
embedded by one map and the synthetic side stays differentiable.

It can read what the evaluation GNN reads: ``aggr="sum"`` sums neighbours (how many related
rows there are shows), and ``ages`` (days before the seed's time, NaN for untimed rows, as
``temporal.age_days`` gives them) append ``time_features`` to every row, so a row seen
yesterday and one seen ten years ago are embedded apart.
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData
from torch_geometric.utils import scatter

AGE_SCALES_DAYS = (7.0, 30.0, 365.0, 3650.0)
"""Time constants of the recency features: a week, a month, a year, a decade."""
TIME_DIM = len(AGE_SCALES_DAYS) + 1


def time_features(age_days: torch.Tensor) -> torch.Tensor:
    """(n, TIME_DIM): ``exp(-age / scale)`` per scale and a timed flag; zeros for NaN ages.
    Smooth in the age, so a learnable synthetic age gets gradients."""
    timed = torch.isfinite(age_days)
    age = torch.where(timed, age_days, torch.zeros_like(age_days)).clamp(min=0.0)[:, None]
    scales = torch.as_tensor(AGE_SCALES_DAYS, dtype=age.dtype, device=age.device)
    feats = torch.cat([torch.exp(-age / scales), torch.ones_like(age)], dim=1)
    return feats * timed[:, None].to(feats.dtype)


def with_time_features(x: dict[str, torch.Tensor], ages: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """``h^0``: each node type's ``x``, with ``time_features`` appended when ``ages`` is given
    (types without ages, or untimed rows, get zeros there)."""
    if ages is None:
        return x
    out = {}
    for nt, rows in x.items():
        age = ages.get(nt)
        if age is None:
            age = torch.full((rows.shape[0],), float("nan"), dtype=rows.dtype, device=rows.device)
        out[nt] = torch.cat([rows, time_features(age).to(rows.dtype)], dim=1)
    return out


def hop(
    h: dict[str, torch.Tensor], edges: dict[tuple[str, str, str], torch.Tensor], sizes: dict[str, int],
    own: dict[str, torch.Tensor | None], aggr: str,
) -> dict[str, torch.Tensor]:
    """One step of the propagation for the ``sizes[nt]`` output rows of each node type: the
    mean of a row's own state and, per relation it has in-neighbours under, their mean or sum.
    ``edges[et]``: (2, E) positions of each edge's source in ``h[src]`` and of its destination
    among the outputs, every in-edge of every output row; ``own[nt]``: the outputs' positions
    in ``h[nt]`` (None: the same rows)."""
    total = {nt: h[nt] if own[nt] is None else h[nt].index_select(0, own[nt]) for nt in sizes}
    terms = {nt: h[nt].new_ones(n, 1) for nt, n in sizes.items()}  # self + relations
    for (src, _, dst), ei in edges.items():
        if dst not in sizes or ei.numel() == 0:
            continue
        msg = h[src].index_select(0, ei[0])
        summed = scatter(msg, ei[1], dim=0, dim_size=sizes[dst], reduce="sum")
        deg = scatter(msg.new_ones(ei.shape[1], 1), ei[1], dim=0, dim_size=sizes[dst], reduce="sum")
        total[dst] = total[dst] + (summed / deg.clamp(min=1) if aggr == "mean" else summed)
        terms[dst] = terms[dst] + (deg > 0).to(total[dst].dtype)
    return {nt: total[nt] / terms[nt] for nt in sizes}


def check_aggr(aggr: str) -> None:
    """A clear error for an aggregation the propagation does not have."""
    if aggr not in ("mean", "sum"):
        raise ValueError(f"aggr must be 'mean' or 'sum', got {aggr!r}")


def _layers(
    data: HeteroData, hops: int, wanted: set[str] | None = None, aggr: str = "mean",
    ages: dict[str, torch.Tensor] | None = None,
) -> dict[str, list[torch.Tensor]]:
    """``[h^0, ..., h^hops]`` per node type in ``wanted`` (default: all; see ``propagate``).

    The last hop only feeds the wanted types, so it is computed for them alone.
    """
    check_aggr(aggr)
    h = with_time_features({nt: data[nt].x for nt in data.node_types}, ages)
    layers = {nt: [x] for nt, x in h.items()}
    edges = {et: data[et].edge_index for et in data.edge_types}
    for k in range(hops):
        targets = set(h) if wanted is None or k < hops - 1 else wanted
        h = hop(h, edges, {nt: h[nt].shape[0] for nt in targets}, dict.fromkeys(targets), aggr)
        for nt, x in h.items():
            layers[nt].append(x)
    return {nt: xs for nt, xs in layers.items() if wanted is None or nt in wanted}


def propagate(
    data: HeteroData, hops: int, seed_type: str, num_seeds: int | None = None, aggr: str = "mean",
    ages: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Rows of ``concat(h^0..h^hops)`` for the first ``num_seeds`` nodes of ``seed_type``.

    ``h^0 = x`` (plus ``time_features(ages)``); ``h^{k+1}[v]`` is the mean of ``h^k[v]`` and,
    for every incoming edge type under which ``v`` has at least one neighbour, the mean
    (``aggr="mean"``) or the sum (``"sum"``) of those neighbours' ``h^k``. A relation a node
    has no neighbours under does not dilute the mean (a timeless customer with no orders yet
    keeps its own features rather than being pulled towards zero).
    """
    layers = _layers(data, hops, {seed_type}, aggr, ages)[seed_type]
    return torch.cat([h if num_seeds is None else h[:num_seeds] for h in layers], dim=1)
