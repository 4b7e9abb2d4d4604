"""The distilled graph as an earlier labelled example sees it.

A real entity is a training example at many label times ``T``, each seeing only the rows
stamped ``<= T``. A distilled graph stores a node's rows once, with their ages at its own
label time, and ``EarlierSeeds`` adds examples of the same node ``shift`` days earlier. This
module builds the graph such an example reads: every age less ``shift``, and every edge to
or from a row that is not yet there (a finite age below zero) removed, as the temporal
sampler would never have drawn it. One stored history then serves every label of its
entity, at a few bytes per extra label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from t2g_lib.graph import GraphSchema, SyntheticGraph
from t2g_lib.layer_trim import hop_distance


@dataclass
class SeedGroup:
    """Examples that read the graph at one shift: their target nodes and labels."""

    shift: float
    node: np.ndarray
    y: np.ndarray


def seed_groups(graph: SyntheticGraph) -> list[SeedGroup]:
    """Every labelled example of ``graph``, grouped by shift: each target node at shift 0
    with ``y``, then the ``earlier`` examples by increasing shift."""
    y = np.asarray(graph.y)
    groups = [SeedGroup(0.0, np.arange(len(y)), y)]
    early = graph.earlier
    if early is None or len(early) == 0:
        return groups
    shift = np.asarray(early.shift, dtype=np.float32)  # exact: a row at the example's time stays visible
    for s in np.unique(shift):
        pick = np.flatnonzero(shift == s)
        groups.append(SeedGroup(float(s), np.asarray(early.node)[pick].astype(np.int64), np.asarray(early.y)[pick]))
    return groups


def _most_recent(dst: np.ndarray, src_age: np.ndarray, k: int) -> np.ndarray:
    """Mask of the edges that bring each destination its ``k`` youngest sources, as the
    temporal sampler draws them: equal ages by the later position first, untimed (NaN)
    sources after the timed ones by the earlier position first."""
    timed = np.isfinite(src_age)
    pos = np.arange(len(dst))
    order = np.lexsort((np.where(timed, -pos, pos), np.where(timed, src_age, np.inf), dst))
    ranked = dst[order]
    first = np.searchsorted(ranked, ranked, side="left")
    keep = np.zeros(len(dst), dtype=bool)
    keep[order[np.arange(len(order)) - first < k]] = True
    return keep


def shifted_view(
    edge_index: dict[tuple[str, str, str], torch.Tensor], ages: dict[str, torch.Tensor], shift: float,
    seed_type: str, num_neighbors: list[int],
) -> tuple[dict[tuple[str, str, str], torch.Tensor], dict[str, torch.Tensor]]:
    """The edges and ages an example ``shift`` days earlier reads (see the module doc).

    A stored history may hold more children per row than one example's sample did (the
    union of several examples' samples), so each row then hears only its most recent
    visible children per relation: ``num_neighbors[0]`` for target nodes (hop 1),
    ``num_neighbors[-1]`` for any other row (hop 2), as the temporal sampler caps them.
    """
    moved = {nt: a - shift for nt, a in ages.items()}
    absent = {nt: (torch.isfinite(a) & (a < 0)).cpu().numpy() for nt, a in moved.items()}
    out = {}
    for et, ei in edge_index.items():
        src, dst = (v.cpu().numpy() for v in ei)
        keep = np.ones(len(src), dtype=bool)
        for side, nt in ((src, et[0]), (dst, et[2])):
            if nt in absent:
                keep &= ~absent[nt][side]
        if GraphSchema.brings_children(et):  # the sampler caps these
            k = num_neighbors[0] if et[2] == seed_type else num_neighbors[-1]
            src_age = moved[et[0]].cpu().numpy()[src] if et[0] in moved else np.full(len(src), np.nan)
            idx = np.flatnonzero(keep)
            keep[idx[~_most_recent(dst[idx], src_age[idx], k)]] = False
        out[et] = ei[:, torch.as_tensor(keep, device=ei.device)]
    return out, moved


@dataclass
class UnrolledExamples:
    """Every group's view in one graph: per view, only the rows its seeds reach within the
    model's depth, so one forward pass scores every example. ``seed`` indexes the target
    nodes of this graph, one per example, in ``seed_groups`` order."""

    x: dict[str, torch.Tensor]
    edge_index: dict[tuple[str, str, str], torch.Tensor]
    ages: dict[str, torch.Tensor]
    seed: torch.Tensor


def unroll(
    x: dict[str, torch.Tensor], edge_index: dict[tuple[str, str, str], torch.Tensor], ages: dict[str, torch.Tensor],
    groups: list[SeedGroup], seed_type: str, num_neighbors: list[int], hops: int,
) -> UnrolledExamples:
    """The disjoint union of every group's ``shifted_view``, each cut to what its seeds read."""
    sizes = {nt: int(v.shape[0]) for nt, v in x.items()}
    rows: dict[str, list[np.ndarray]] = {nt: [] for nt in sizes}
    aged: dict[str, list[torch.Tensor]] = {nt: [] for nt in ages}
    edges: dict[tuple[str, str, str], list[np.ndarray]] = {et: [] for et in edge_index}
    seeds, offset = [], {nt: 0 for nt in sizes}
    for g in groups:
        view, moved = shifted_view(edge_index, ages, g.shift, seed_type, num_neighbors)
        view_np = {et: tuple(v.cpu().numpy() for v in ei) for et, ei in view.items()}
        dist = hop_distance(view_np, sizes, seed_type, np.asarray(g.node), hops)
        reach = {nt: d <= hops for nt, d in dist.items()}
        new_id = {}
        for nt, mask in reach.items():
            idx = np.flatnonzero(mask)
            new_id[nt] = np.full(sizes[nt], -1, dtype=np.int64)
            new_id[nt][idx] = offset[nt] + np.arange(len(idx))
            offset[nt] += len(idx)
            rows[nt].append(idx)
            if nt in moved:
                aged[nt].append(moved[nt][torch.as_tensor(idx, device=moved[nt].device)])
        for (src_t, rel, dst_t), (src, dst) in view_np.items():
            keep = reach[src_t][src] & reach[dst_t][dst]
            edges[(src_t, rel, dst_t)].append(np.stack([new_id[src_t][src[keep]], new_id[dst_t][dst[keep]]]))
        seeds.append(new_id[seed_type][np.asarray(g.node)])
    dev = next(iter(x.values())).device
    return UnrolledExamples(
        {nt: x[nt][torch.as_tensor(np.concatenate(r), device=dev)] for nt, r in rows.items()},
        {et: torch.as_tensor(np.concatenate(e, axis=1), device=dev) for et, e in edges.items()},
        {nt: torch.cat(a) for nt, a in aged.items()},
        torch.as_tensor(np.concatenate(seeds), device=dev),
    )
