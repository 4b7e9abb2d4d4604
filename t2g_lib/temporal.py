"""Vectorized temporal neighbour sampling over a RelBench database, without pyg-lib.

PyG's temporal ``NeighborLoader`` needs pyg-lib, which t2g cannot depend on (see DESIGN.md),
so this module samples per-seed computation trees with numpy only: per relation a CSR of
parent -> children sorted by child time, and one global ``searchsorted`` per hop finds, for
every frontier node at once, the children stamped at or before its seed time.

Trees are *disjoint and not deduplicated*: each seed gets its own copy of every node it
reaches, so K rounds of propagation over the sample compute exactly the K-hop aggregation
the seed would see on the (time-filtered, neighbour-capped) real graph.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from relbench.base import Database
from torch_geometric.data import HeteroData

from t2g_lib.graph import EdgeType, GraphSchema, Relation, fkey_index
from t2g_lib.timestamps import to_seconds

UNTIMED = np.iinfo(np.int64).min
"""``time`` of a node whose table has no time column (it is visible at every seed time)."""

NO_TIME_LIMIT = np.iinfo(np.int64).max
"""Seed time that disables the temporal filter (for rows of timeless tables)."""


@dataclass
class _ChildIndex:
    """Children of one relation grouped by parent, each group sorted by (time, row)."""

    rowptr: np.ndarray  # (n_parent + 1,) start of each parent's children in ``child``
    child: np.ndarray  # child row indices, grouped by parent
    keys: np.ndarray | None  # parent * stride + time rank, sorted; None for timeless children
    uniq_times: np.ndarray | None  # sorted distinct child times (the ranks' values)
    stride: int


def _child_index(
    parent_of: np.ndarray, child_time: np.ndarray | None, n_parent: int
) -> _ChildIndex:
    rows = np.flatnonzero(parent_of >= 0)
    parents = parent_of[rows]
    if child_time is None:
        order = np.argsort(parents, kind="stable")
        keys, uniq, stride = None, None, 0
    else:
        uniq, rank = np.unique(child_time[rows], return_inverse=True)
        stride = len(uniq) + 1
        composite = parents * stride + rank
        order = np.argsort(composite, kind="stable")  # stable: ties by row index
        keys = composite[order]
    rowptr = np.zeros(n_parent + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents, minlength=n_parent), out=rowptr[1:])
    return _ChildIndex(rowptr, rows[order], keys, uniq, stride)


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo_i, hi_i): (owner i of every position, the positions), vectorized."""
    counts = hi - lo
    owner = np.repeat(np.arange(len(lo)), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts) + lo[owner]
    return owner, pos


class _DatabaseIndex:
    """What sampling reads of a database: each table's times, and per relation every child's
    parent and the parent -> children CSR. It depends on the database only, so the samplers
    of one database share it (``_INDEXES``): on TPC-H SF1 it takes 0.46 GiB, and the KRR stage
    alone built three (its own, the judge's, the coreset's)."""

    def __init__(self, db: Database) -> None:
        self.schema = GraphSchema.from_database(db)
        self.num_rows = {t: len(db.table_dict[t].df) for t in self.schema.tables}
        self.times: dict[str, np.ndarray | None] = {}
        for t in self.schema.tables:
            col = db.table_dict[t].time_col
            self.times[t] = None if col is None else to_seconds(db.table_dict[t].df[col])
        self.parent_of: dict[int, np.ndarray] = {}
        self.children: dict[int, _ChildIndex] = {}
        for rel in self.schema.relations:
            self.parent_of[rel.index] = fkey_index(db, rel)
            self.children[rel.index] = _child_index(
                self.parent_of[rel.index], self.times[rel.child], self.num_rows[rel.parent]
            )


_INDEXES: "weakref.WeakKeyDictionary[Database, _DatabaseIndex]" = weakref.WeakKeyDictionary()
"""Each live database's index, dropped with the database. A database is not changed once
loaded (the stages read their snapshot), so an index never goes stale."""


class TemporalSampler:
    """Most-recent-k temporal neighbour sampler producing disjoint per-seed subtrees.

    ``num_neighbors[h]`` caps the children taken per relation at hop ``h``; a child reaches
    its (single) parent whenever the parent exists by the seed time.
    """

    def __init__(self, db: Database, num_neighbors: list[int] = [8, 8]) -> None:  # noqa: B006
        self.num_neighbors = list(num_neighbors)
        index = _INDEXES.get(db)
        if index is None:
            index = _INDEXES[db] = _DatabaseIndex(db)
        self.schema, self.num_rows, self.times = index.schema, index.num_rows, index.times
        self.parent_of, self.children = index.parent_of, index.children

    def _node_time(self, table: str, rows: np.ndarray) -> np.ndarray:
        times = self.times[table]
        return np.full(len(rows), UNTIMED, dtype=np.int64) if times is None else times[rows]

    def _sample_children(
        self, rel: Relation, parents: np.ndarray, seed_time: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(frontier position, child row) for the <= k most recent children with time <= T."""
        idx = self.children[rel.index]
        start = idx.rowptr[parents]
        if idx.keys is None:
            end = np.minimum(idx.rowptr[parents + 1], start + k)
            lo = start
        else:
            n_visible = np.searchsorted(idx.uniq_times, seed_time, side="right")
            end = np.searchsorted(idx.keys, parents * idx.stride + n_visible, side="left")
            lo = np.maximum(start, end - k)
        owner, pos = _expand(lo, end)
        return owner, idx.child[pos]

    def sample(
        self,
        table: str,
        index: np.ndarray,
        time: np.ndarray,
        features: dict[str, torch.Tensor] | None = None,
    ) -> HeteroData:
        """Disjoint temporal subtrees rooted at rows ``index`` of ``table`` at ``time``.

        ``time`` is int64 seconds per seed (``NO_TIME_LIMIT`` disables the filter);
        ``features`` maps table name -> (n_rows, d) tensor; without it every ``x`` is
        zero-wide (for callers that read rows later, or only structure and ages). The seeds
        are the first ``len(index)`` nodes of the seed node type, in order.
        """
        gs = self.schema
        index = np.asarray(index, dtype=np.int64)
        time = np.asarray(time, dtype=np.int64)
        rows: dict[str, list[np.ndarray]] = {t: [] for t in gs.tables}  # global row chunks
        slots: dict[str, list[np.ndarray]] = {t: [] for t in gs.tables}  # seed of each node
        count = {t: 0 for t in gs.tables}
        edges: dict[EdgeType, list[np.ndarray]] = {}
        nxt: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

        def link(
            t: str, etype: EdgeType | None, r: np.ndarray, s: np.ndarray, sampler: np.ndarray | None
        ) -> None:
            """Add nodes of type t; their messages flow to the node that sampled them."""
            local = np.arange(count[t], count[t] + len(r), dtype=np.int64)
            rows[t].append(r)
            slots[t].append(s)
            count[t] += len(r)
            if etype is not None:
                edges.setdefault(etype, []).append(np.stack([local, sampler]))
            nxt.setdefault(t, []).append((r, s, local))

        link(table, None, index, np.arange(len(index), dtype=np.int64), None)
        for k in self.num_neighbors:
            frontier = {
                t: tuple(np.concatenate([c[i] for c in chunks]) for i in range(3))
                for t, chunks in nxt.items()
            }
            nxt = {}
            for t, (f_rows, f_slot, f_local) in frontier.items():
                f_time = time[f_slot]
                for rel in gs.relations:
                    fwd, rev = gs.edge_types(rel)
                    if rel.child == t:  # the one parent, if it exists by the seed time
                        par = self.parent_of[rel.index][f_rows]
                        ok = par >= 0
                        p_times = self.times[rel.parent]
                        if p_times is not None:
                            ok &= p_times[np.maximum(par, 0)] <= f_time
                        link(rel.parent, rev, par[ok], f_slot[ok], f_local[ok])
                    if rel.parent == t:  # the k most recent children by the seed time
                        owner, child = self._sample_children(rel, f_rows, f_time, k)
                        link(rel.child, fwd, child, f_slot[owner], f_local[owner])
        return self._assemble(rows, slots, edges, time, features)

    def _assemble(
        self,
        rows: dict[str, list[np.ndarray]],
        slots: dict[str, list[np.ndarray]],
        edges: dict[EdgeType, list[np.ndarray]],
        time: np.ndarray,
        features: dict[str, torch.Tensor] | None,
    ) -> HeteroData:
        gs = self.schema
        data = HeteroData()
        for t in gs.tables:
            nt = gs.node_type(t)
            r = np.concatenate(rows[t]) if rows[t] else np.zeros(0, dtype=np.int64)
            s = np.concatenate(slots[t]) if slots[t] else np.zeros(0, dtype=np.int64)
            n_id = torch.from_numpy(r)
            data[nt].x = torch.zeros((len(r), 0)) if features is None else gather_rows(features[t], n_id)
            data[nt].n_id = n_id
            data[nt].batch = torch.from_numpy(s)
            data[nt].seed_time = torch.from_numpy(time[s])
            data[nt].time = torch.from_numpy(self._node_time(t, r))
            data[nt].num_nodes = len(r)
        for rel in gs.relations:
            for et in gs.edge_types(rel):
                chunks = edges.get(et)
                ei = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), dtype=np.int64)
                data[et].edge_index = torch.from_numpy(ei)
        return data


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of a table's features ``x`` (on ``x``'s device): how a sample's nodes get
    their features, when sampled or later (``SampledSplit.with_features``, coresets)."""
    return x.index_select(0, rows.to(x.device))


def age_days(subgraph: HeteroData) -> dict[str, torch.Tensor]:
    """Per node type, each node's age in days at its seed's time (what a temporal model
    reads); NaN for untimed rows and for seeds without a time limit."""
    out = {}
    for nt in subgraph.node_types:
        store = subgraph[nt]
        if "time" not in store or "seed_time" not in store:
            continue
        age = (store.seed_time.double() - store.time.double()) / 86400.0
        age[(store.time == UNTIMED) | (store.seed_time == NO_TIME_LIMIT)] = float("nan")
        out[nt] = age.float()
    return out


def max_leak_seconds(subgraph: HeteroData) -> int:
    """Largest ``time - seed_time`` over the timed nodes of a sample (<= 0: no leak).

    Untimed nodes are skipped. Computed in float64 so ``NO_TIME_LIMIT`` seeds cannot
    overflow; exact for any realistic timestamp. Returns ``UNTIMED`` when nothing is timed.
    """
    worst = float(UNTIMED)
    for nt in subgraph.node_types:
        store = subgraph[nt]
        if "time" not in store or store.time.numel() == 0:
            continue
        timed = store.time != UNTIMED
        if bool(timed.any()):
            diff = store.time[timed].double() - store.seed_time[timed].double()
            worst = max(worst, float(diff.max()))
    return int(worst)
