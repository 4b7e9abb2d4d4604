"""Subgraph coresets: real labelled training examples, each kept with its true temporal
neighbourhood exactly as the GNN samples it, as many as fit the distilled graph's bytes.

A coreset of loose rows cannot stand in for a database: a selected child whose parent was
not selected must be dropped or re-attached to someone else's parent, and its model learns
from neighbourhoods no real entity has. Here each example ``(entity, T)`` brings the
disjoint subtree the temporal sampler draws for it (rows stamped <= T, the model's
neighbours per hop), with every node's age at T, so a model trained on the coreset sees what
a model trained on the full database sees, on fewer examples.

Two adjustments turn sampled trees into a ``SyntheticGraph`` (one parent per child and
relation, every target-table node a labelled example): the copy of a child's own parent
that the sampler draws again one hop later is dropped (the child already links to it), and
so are target-table rows that are not seeds, with whatever was sampled below them.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from relbench.base import Database

from t2g_lib.graph import EarlierSeeds, SyntheticGraph
from t2g_lib.metrics import MULTICLASS, task_kind
from t2g_lib.models import ModelSpec
from t2g_lib.selectors import Selector, take
from t2g_lib.task_data import TaskData
from t2g_lib.temporal import UNTIMED, TemporalSampler, age_days, gather_rows
from t2g_lib.timestamps import to_seconds
from t2g_lib.train import as_feature_tensors, label_frame

PROBE = 64
"""Examples sampled to estimate the bytes one example's subtree takes."""


def _kept_nodes(sub, schema, seed_type: str, num_seeds: int) -> dict[str, np.ndarray]:
    """Per node type, a mask of the sampled nodes that stay (see the module docstring)."""
    types = list(sub.node_types)
    up = {nt: np.full((sub[nt].num_nodes, 2), -1) for nt in types}  # (type, node) that drew it
    drop = {nt: np.zeros(sub[nt].num_nodes, dtype=bool) for nt in types}
    for rel in schema.relations:
        fwd, rev = schema.edge_types(rel)
        child_nt, parent_nt = fwd[0], fwd[2]
        children, drawn_by = sub[fwd].edge_index.numpy()  # children drawn by their parent
        parents, drawer = sub[rev].edge_index.numpy()  # parents drawn by their child
        up[child_nt][children] = np.stack([np.full(len(children), types.index(parent_nt)), drawn_by], 1)
        up[parent_nt][parents] = np.stack([np.full(len(parents), types.index(child_nt)), drawer], 1)
        drawn_as_child = np.zeros(sub[child_nt].num_nodes, dtype=bool)
        drawn_as_child[children] = True
        drop[parent_nt][parents[drawn_as_child[drawer]]] = True  # the child's own parent, again
    drop[seed_type][num_seeds:] = True  # target-table rows that are not labelled examples
    changed = True
    while changed:  # whatever hangs below a dropped node goes too (to the fixed point)
        changed = False
        for nt in types:
            for j, above in enumerate(types):
                below = np.flatnonzero(~drop[nt] & (up[nt][:, 0] == j))
                hit = below[drop[above][up[nt][below, 1]]]
                if hit.size:
                    drop[nt][hit] = changed = True
    return {nt: ~d for nt, d in drop.items()}


def _parent_links(sub, schema, new_id: dict[str, np.ndarray], sizes: dict[str, int]) -> dict[int, np.ndarray]:
    """Per relation, the parent (new id) of every kept child (new id), -1 where its parent was
    not kept. ``new_id`` maps each sampled node to its kept node, -1 for dropped ones."""
    parents = {}
    for rel in schema.relations:
        fwd, rev = schema.edge_types(rel)
        pairs = np.concatenate([sub[fwd].edge_index.numpy(), sub[rev].edge_index.numpy()[::-1]], axis=1)
        c, p = new_id[fwd[0]][pairs[0]], new_id[fwd[2]][pairs[1]]
        ok = (c >= 0) & (p >= 0)
        link = np.full(sizes[rel.child], -1, dtype=np.int64)
        link[c[ok]] = p[ok]
        parents[rel.index] = link
    return parents


def _rows_of(features: dict[str, torch.Tensor], table: str, sub, nt: str, positions: np.ndarray) -> np.ndarray:
    """The features of the sampled nodes at ``positions``, gathered by their rows: a coreset
    samples its trees without features and reads only the rows it keeps."""
    rows = sub[nt].n_id[torch.as_tensor(positions, dtype=torch.long)]
    return gather_rows(features[table], rows).cpu().numpy().astype(np.float32)


def trees_to_graph(sub, schema, target_table: str, num_seeds: int, y: np.ndarray,
                   features: dict[str, torch.Tensor]) -> SyntheticGraph:
    """The sampled subtrees of ``num_seeds`` labelled examples as one ``SyntheticGraph``;
    its rows' features come from ``features`` (per table, as the sampler read them)."""
    seed_type = schema.node_type(target_table)
    keep = _kept_nodes(sub, schema, seed_type, num_seeds)
    new_id = {nt: np.where(k, np.cumsum(k) - 1, -1) for nt, k in keep.items()}
    ages = age_days(sub)
    x, age = {}, {}
    for table in schema.tables:
        nt = schema.node_type(table)
        x[table] = _rows_of(features, table, sub, nt, np.flatnonzero(keep[nt]))
        age[table] = ages[nt].numpy()[keep[nt]].astype(np.float32)
    parents = _parent_links(sub, schema, new_id, {t: len(v) for t, v in x.items()})
    return SyntheticGraph(schema, target_table, x, parents, np.asarray(y, dtype=np.float32), age=age)


def trees_to_histories(sub, schema, target_table: str, entity: np.ndarray, y: np.ndarray,
                       features: dict[str, torch.Tensor]) -> SyntheticGraph:
    """The sampled subtrees of labelled examples merged per entity into one history (rows'
    features from ``features``, as in ``trees_to_graph``).

    ``entity[i]`` is seed ``i``'s entity. Each entity's rows (over all its seeds' trees,
    each row once) form one component, aged at its latest seed's time, whose label is that
    seed's; its other seeds become ``EarlierSeeds`` shifted by how much earlier they are.
    Target nodes come in the order of ``np.unique(entity)``.
    """
    seed_type = schema.node_type(target_table)
    num_seeds = len(entity)
    keep = _kept_nodes(sub, schema, seed_type, num_seeds)
    _, group = np.unique(entity, return_inverse=True)
    seed_time = sub[seed_type].seed_time.numpy()[:num_seeds]
    anchor = np.full(group.max() + 1, np.iinfo(np.int64).min)
    np.maximum.at(anchor, group, seed_time)
    new_id, x, age = {}, {}, {}
    for table in schema.tables:
        nt = schema.node_type(table)
        kept = np.flatnonzero(keep[nt])
        g = group[sub[nt].batch.numpy()[kept]]
        rows = sub[nt].n_id.numpy()[kept]
        _, first, inverse = np.unique(g * (int(rows.max(initial=0)) + 1) + rows, return_index=True, return_inverse=True)
        new_id[nt] = np.full(sub[nt].num_nodes, -1, dtype=np.int64)
        new_id[nt][kept] = inverse
        x[table] = _rows_of(features, table, sub, nt, kept[first])
        t = sub[nt].time.numpy()[kept[first]]
        days = (anchor[g[first]] - t).astype(np.float64) / 86400.0
        age[table] = np.where(t == UNTIMED, np.nan, days).astype(np.float32)
    parents = _parent_links(sub, schema, new_id, {t: len(v) for t, v in x.items()})
    latest = seed_time == anchor[group]
    label = np.zeros((len(anchor),) + np.shape(y)[1:], dtype=np.float32)
    label[group[latest]] = np.asarray(y)[latest]
    earlier = ~latest
    shift = (anchor[group[earlier]] - seed_time[earlier]).astype(np.float64) / 86400.0
    seeds = EarlierSeeds(group[earlier].astype(np.int32), shift.astype(np.float32),
                         np.asarray(y, dtype=np.float32)[earlier])
    return SyntheticGraph(schema, target_table, x, parents, label, age=age, earlier=seeds)


def spread_examples(entity: np.ndarray, time: np.ndarray, per_entity: int | None) -> np.ndarray:
    """A mask keeping at most ``per_entity`` examples of each entity, evenly spread over its
    label times from the first to the latest (always kept); every example when None."""
    if per_entity is None:
        return np.ones(len(entity), dtype=bool)
    if per_entity < 1:
        raise ValueError(f"examples_per_entity must be None (every example) or >= 1, got {per_entity}")
    order = np.lexsort((time, entity))  # by entity, then time
    _, start, count = np.unique(entity[order], return_index=True, return_counts=True)
    picked = np.zeros(len(entity), dtype=bool)
    for j in range(per_entity):  # the j-th of per_entity evenly spaced ranks, the last one included
        frac = 1.0 if per_entity == 1 else j / (per_entity - 1)
        picked[order[start + np.rint(frac * (count - 1)).astype(np.int64)]] = True
    return picked


class CoresetUnits:
    """What a coreset chooses from, one train example each or, with ``histories``, one entity
    with its train examples (at most ``examples_per_entity`` of them, ``spread_examples``),
    and the ``SyntheticGraph`` any set of them makes, stored as ``reference`` stores rows."""

    def __init__(
        self,
        db: Database,
        features: dict[str, np.ndarray],
        reference: SyntheticGraph,
        task: TaskData,
        spec: ModelSpec = ModelSpec(),
        histories: bool = False,
        examples_per_entity: int | None = None,
        sampler: TemporalSampler | None = None,
    ) -> None:
        train = label_frame(task.train)
        self.task, self.reference, self.histories = task, reference, histories
        self.entities = train[task.entity_col].to_numpy(dtype=np.int64)
        self.times = to_seconds(train[task.time_col])
        self.labels = self._labels(task)
        self.sampler = sampler if sampler is not None else TemporalSampler(db, list(spec.num_neighbors))
        self.feats = as_feature_tensors(features)
        if histories:
            self.unit_entity, self._unit_of_row = np.unique(self.entities, return_inverse=True)
            self._usable = spread_examples(self.entities, self.times, examples_per_entity)
        else:
            self.unit_entity = self.entities  # the entity of each unit, for the selectors

    def _labels(self, task: TaskData) -> np.ndarray:
        labels = label_frame(task.train)[task.target_col].to_numpy()
        if task_kind(task.task_type) == MULTICLASS:
            y = self.reference.y
            width = np.asarray(y).shape[1] if np.ndim(y) == 2 else int(labels.max()) + 1
            labels = np.eye(width, dtype=np.float32)[labels.astype(np.int64)]
        return labels

    def relabelled(self, task: TaskData) -> "CoresetUnits":
        """The same units under ``task``'s labels of the same train rows (e.g. a teacher's)."""
        if len(label_frame(task.train)) != len(self.entities):
            raise ValueError(f"{len(label_frame(task.train))} train rows to relabel {len(self.entities)}")
        other = copy.copy(self)
        other.task, other.labels = task, self._labels(task)
        return other

    def __len__(self) -> int:
        return len(self.unit_entity)

    def build(self, units: np.ndarray) -> SyntheticGraph:
        """The graph of ``units`` (positions into the units)."""
        rows = np.flatnonzero(np.isin(self._unit_of_row, units) & self._usable) if self.histories else units
        with torch.no_grad():
            sub = self.sampler.sample(self.task.entity_table, self.entities[rows], self.times[rows])
        schema, table = self.sampler.schema, self.task.entity_table
        graph = (trees_to_histories(sub, schema, table, self.entities[rows], self.labels[rows], self.feats)
                 if self.histories else trees_to_graph(sub, schema, table, len(rows), self.labels[rows], self.feats))
        return graph.with_codec(self.reference.codec)


def subgraph_coreset(
    select: Selector,
    db: Database,
    features: dict[str, np.ndarray],
    reference: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
    spec: ModelSpec = ModelSpec(),
    max_candidates: int = 20000,
    budget: int | None = None,
    histories: bool = False,
    examples_per_entity: int | None = None,
) -> SyntheticGraph:
    """The longest prefix of ``select``'s order over the train examples (on their entity
    embeddings) whose subtrees fit in ``budget`` bytes (default ``reference.nbytes()``),
    stored as ``reference`` stores rows (its codec); at least one example.

    With ``histories``, ``select`` orders entities instead, and each chosen entity brings
    every train example it has, merged into one history (``trees_to_histories``), or at most
    ``examples_per_entity`` of them spread over its time (``spread_examples``): fewer label
    times read fewer rows, so the same bytes may hold more entities.
    """
    units = CoresetUnits(db, features, reference, task, spec, histories, examples_per_entity)
    return units.build(choose_units(select, units, features, budget, seed, max_candidates))


def choose_units(
    select: Selector,
    units: CoresetUnits,
    features: dict[str, np.ndarray],
    budget: int | None = None,
    seed: int = 0,
    max_candidates: int = 20000,
) -> np.ndarray:
    """The longest prefix of ``select``'s order over ``units`` (on their entities' embeddings)
    whose graph fits in ``budget`` bytes (default the reference's); at least one unit."""
    rng = np.random.default_rng(seed)
    build, n_units = units.build, len(units)
    budget = units.reference.nbytes() if budget is None else int(budget)
    probe = rng.choice(n_units, size=min(PROBE, n_units), replace=False)
    per_unit = build(probe).nbytes() / max(len(probe), 1)
    k = int(min(n_units, max(1, 2 * budget // max(per_unit, 1))))
    x = features[units.task.entity_table][units.unit_entity]
    order = take(select, x, k, rng, max_candidates)
    while k < n_units and build(order).nbytes() <= budget:  # chosen units smaller than the probe's
        k = min(2 * k, n_units)
        order = take(select, x, k, np.random.default_rng([seed, k]), max_candidates)
    lo, hi = 1, len(order)  # the longest fitting prefix, by bisection (bytes grow with it)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if build(order[:mid]).nbytes() <= budget:
            lo = mid
        else:
            hi = mid - 1
    return order[:lo]


def history_entity_gain(
    db: Database,
    features: dict[str, np.ndarray],
    reference: SyntheticGraph,
    task: TaskData,
    examples_per_entity: int,
    budget: int,
    seed: int = 0,
    spec: ModelSpec = ModelSpec(),
) -> float:
    """How many times more entities ``budget`` bytes hold when each history keeps at most
    ``examples_per_entity`` label times, estimated from a seeded probe of entities (both
    counts capped at the entities there are)."""
    full = CoresetUnits(db, features, reference, task, spec, histories=True)
    thin = CoresetUnits(db, features, reference, task, spec, histories=True, examples_per_entity=examples_per_entity,
                        sampler=full.sampler)
    probe = np.random.default_rng(seed).choice(len(full), size=min(PROBE, len(full)), replace=False)
    fits = [min(len(full), budget * len(probe) / max(u.build(probe).nbytes(), 1)) for u in (full, thin)]
    return fits[1] / max(fits[0], 1e-9)
