"""The real side of KRR distillation: fixed embeddings of real rows, computed once.

Real rows are embedded by sampling their temporal subtree and running the fixed propagation;
real features are frozen, so these embeddings never change during distillation. The task
side holds labelled training rows; a pseudo-label side per table holds real rows with their
cluster (the pretraining's pseudo-label), which the synthetic blocks must reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from t2g_lib.graph import SyntheticGraph
from t2g_lib.propagate import TIME_DIM, propagate
from t2g_lib.temporal import TemporalSampler, age_days


@dataclass
class RealSide:
    """Fixed embeddings of a pool of real rows, centred and scaled by their own statistics."""

    z: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def build(cls, z: torch.Tensor, target: torch.Tensor) -> "RealSide":
        # Centre and rescale (one scalar, not per column: near-constant columns would blow
        # up). Propagated embeddings share a large common offset; without centring the
        # normalised NTK sees every pair of rows as nearly parallel.
        mean = z.mean(0, keepdim=True)
        scale = ((z - mean).pow(2).sum(1).mean().sqrt() / z.shape[1] ** 0.5).clamp(min=1e-8)
        return cls((z - mean) / scale, target, mean, scale)

    def normalise(self, z_syn: torch.Tensor) -> torch.Tensor:
        return (z_syn - self.mean) / self.scale


def embed_real(
    sampler: TemporalSampler,
    table: str,
    rows: np.ndarray,
    times: np.ndarray,
    feats: dict[str, torch.Tensor],
    hops: int,
    batch: int,
    device: torch.device,
    aggr: str = "mean",
    temporal: bool = False,
) -> torch.Tensor:
    """Propagated representation of real rows, each seen from its own seed time (with every
    sampled row's age at that time when ``temporal``)."""
    nt = sampler.schema.node_type(table)
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            sub = sampler.sample(table, rows[i : i + batch], times[i : i + batch], feats).to(device)
            ages = age_days(sub) if temporal else None
            out.append(propagate(sub, hops, nt, len(rows[i : i + batch]), aggr, ages))
    if not out:
        width = feats[table].shape[1] + (TIME_DIM if temporal else 0)
        return torch.zeros(0, (hops + 1) * width, device=device)
    return torch.cat(out)


def block_ages(
    sampler: TemporalSampler,
    table: str,
    rows: np.ndarray,
    times: np.ndarray,
    blocks: dict[str, np.ndarray],
    feats: dict[str, torch.Tensor],
    batch: int,
) -> dict[str, dict[int, float]]:
    """Median age in days, per timed table and cluster block, of the real rows the labels
    ``(rows, times)`` of ``table`` sample: where a synthetic row of that block starts."""
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i in range(0, len(rows), batch):
        sub = sampler.sample(table, rows[i : i + batch], times[i : i + batch], feats)
        for nt, age in age_days(sub).items():
            t = sampler.schema.table_of(nt)
            ok = torch.isfinite(age).numpy()
            if t in blocks and ok.any():
                found.setdefault(t, []).append((np.asarray(blocks[t])[sub[nt].n_id.numpy()[ok]], age.numpy()[ok]))
    out: dict[str, dict[int, float]] = {}
    for t, parts in found.items():
        b = np.concatenate([p[0] for p in parts])
        a = np.concatenate([p[1] for p in parts])
        out[t] = {int(k): float(np.median(a[b == k])) for k in np.unique(b)}
        out[t][-1] = float(np.median(a))  # blocks no sampled row fell in
    return out


def pseudo_label_sides(
    structure: SyntheticGraph,
    pseudo_labels: dict[str, np.ndarray],
    n_clusters: dict[str, int],
    sampler: TemporalSampler,
    embed,
    t_cut: int,
    size: int,
    rng: np.random.Generator,
    device: torch.device,
) -> dict[str, tuple[RealSide, torch.Tensor]]:
    """Per node type: up to ``size`` real rows stamped by ``t_cut`` (seen from their own time,
    or from ``t_cut`` when untimed) with their clusters, and the synthetic nodes' block one-hots.

    Tables without pseudo-labels or with fewer than two synthetic blocks are skipped: there
    is nothing to tell apart. ``embed(table, rows, seed_times)`` embeds real rows.
    """
    sides: dict[str, tuple[RealSide, torch.Tensor]] = {}
    for table in structure.schema.tables:
        blocks = structure.blocks.get(table)
        if table not in pseudo_labels or blocks is None or len(np.unique(blocks)) < 2:
            continue
        own = sampler.times[table]
        rows = np.arange(sampler.num_rows[table]) if own is None else np.flatnonzero(own <= t_cut)
        take = min(len(rows), size)
        if take == 0:
            continue
        rows = np.sort(rng.choice(rows, size=take, replace=False))
        seed_time = np.full(take, t_cut, dtype=np.int64) if own is None else own[rows]
        labels = np.asarray(pseudo_labels[table], dtype=np.int64)[rows]
        support = F.one_hot(
            torch.as_tensor(np.asarray(blocks, dtype=np.int64), device=device), num_classes=n_clusters[table]
        ).float()
        side = RealSide.build(embed(table, rows, seed_time), torch.as_tensor(labels, device=device))
        sides[structure.schema.node_type(table)] = (side, support)
    return sides


def matched_examples(syn_blocks: np.ndarray, example_blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each synthetic target node, a real training example of its block (any example when
    the block has none): the one whose recency it starts from (``example_ages``)."""
    syn_blocks = np.asarray(syn_blocks, dtype=np.int64)
    example_blocks = np.asarray(example_blocks, dtype=np.int64)
    out = rng.integers(0, len(example_blocks), len(syn_blocks))
    for b in np.unique(syn_blocks):
        members = np.flatnonzero(example_blocks == b)
        if len(members):
            nodes = np.flatnonzero(syn_blocks == b)
            out[nodes] = rng.choice(members, size=len(nodes))
    return out


def example_ages(
    sampler: TemporalSampler,
    structure: SyntheticGraph,
    rows: np.ndarray,
    times: np.ndarray,
    batch: int,
) -> dict[str, np.ndarray]:
    """Start ages of the synthetic children of the target table, copied from real examples.

    Synthetic target node ``i`` stands for the real example ``(rows[i], times[i])``: in each
    relation into the target table from a timed table, its ``k``-th synthetic child (in
    order) gets the age of the example's ``k``-th most recent real child (cycling when the
    synthetic node has more children). So synthetic entities start with the recency profiles
    real ones have (one played last season, one ten years ago), not all at a block median.
    NaN where the example has no child in that relation.
    """
    gs, target = structure.schema, structure.target_table
    rels = [r for r in gs.relations if r.parent == target and sampler.times[r.child] is not None]
    real: dict[int, list[np.ndarray]] = {r.index: [] for r in rels}
    for i in range(0, len(rows), batch):
        n = len(rows[i : i + batch])
        sub = sampler.sample(target, rows[i : i + batch], times[i : i + batch])  # ages only, no features
        ages = age_days(sub)
        for r in rels:
            fwd = gs.edge_types(r)[0]
            children, drawn_by = sub[fwd].edge_index.numpy()  # children drawn by their parent
            age = ages[fwd[0]].numpy()[children]
            order = np.lexsort((age, drawn_by))  # by example (the first n target rows), then age
            bounds = np.searchsorted(drawn_by[order], np.arange(n + 1))
            real[r.index] += [age[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]
    out: dict[str, np.ndarray] = {}
    for r in rels:
        parents = np.asarray(structure.parents[r.index], dtype=np.int64)
        days = out.setdefault(r.child, np.full(len(parents), np.nan, dtype=np.float32))
        for i, found in enumerate(real[r.index]):
            kids = np.flatnonzero(parents == i)
            if len(found) and len(kids):
                days[kids] = found[np.arange(len(kids)) % len(found)]
    return out
