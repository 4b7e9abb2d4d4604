"""Coreset baselines at exactly the distilled graph's storage budget.

Each coreset keeps real rows: per table as many as the reference (T2G) graph has nodes, so
features, edges and labels take the same bytes. Features are the rows' frozen embeddings.
On the target table a node is a labelled training example (entity row, T) carrying its real
label; classification examples are selected per class, in proportion to class frequency.
Rows of other timed tables are candidates only if stamped <= the last training label time,
so no coreset holds rows that only val or test could see.

Edges: a selected child keeps its true parent when that parent row was selected; otherwise
it is re-attached to the selected parent row nearest (Euclidean, in embedding space) to its
true parent, so every child keeps one parent as a foreign key does (as the SBM graph does);
a child whose key is missing keeps -1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from relbench.base import Database

from t2g_lib.graph import SyntheticGraph, fkey_index
from t2g_lib.krr import init_from_centroids, label_targets
from t2g_lib.metrics import MULTICLASS, REGRESSION, task_kind
from t2g_lib.pretrain import PretrainResult
from t2g_lib.task_data import TaskData
from t2g_lib.temporal import to_seconds
from t2g_lib.train import label_frame

Selector = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""(candidate features (n, d), k <= n, rng) -> k distinct candidate positions."""


def select_random(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform sample without replacement."""
    return np.sort(rng.choice(len(x), size=k, replace=False))


def select_kcenter(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-center (farthest-point) from a random first center: covers feature space."""
    x = np.asarray(x, dtype=np.float64)
    chosen = [int(rng.integers(len(x)))]
    dist = ((x - x[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        dist[chosen[-1]] = -1.0
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, ((x - x[nxt]) ** 2).sum(1))
        dist[chosen] = -1.0
    return np.asarray(chosen, dtype=np.int64)


def select_herding(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Welling's herding toward the feature mean: the i-th pick makes the mean of the picks
    closest to the mean of all candidates (ties broken by a seeded shuffle)."""
    perm = rng.permutation(len(x))
    x = np.asarray(x, dtype=np.float64)[perm]
    mu = x.mean(0)
    total = np.zeros_like(mu)
    free = np.ones(len(x), dtype=bool)
    chosen: list[int] = []
    for t in range(1, k + 1):
        gap = ((t * mu - total)[None, :] - x) ** 2
        cost = np.where(free, gap.sum(1), np.inf)
        i = int(np.argmin(cost))
        chosen.append(i)
        free[i] = False
        total += x[i]
    return perm[np.asarray(chosen, dtype=np.int64)]


def _take(
    select: Selector, x: np.ndarray, k: int, rng: np.random.Generator, max_candidates: int
) -> np.ndarray:
    """k positions into ``x``; all of them plus random repeats when k exceeds the candidates,
    and a seeded subsample of at most ``max_candidates`` bounds the greedy selectors' cost."""
    n = len(x)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.concatenate([np.arange(n), rng.choice(n, size=k - n, replace=True)]).astype(np.int64)
    pool = np.sort(rng.choice(n, size=max_candidates, replace=False)) if n > max_candidates else np.arange(n)
    return pool[select(x[pool], k, rng)]


def _class_quota(labels: np.ndarray, k: int) -> dict[int, int]:
    """Per-class counts proportional to frequency (largest remainder), >= 1 per class
    when the budget allows."""
    classes, counts = np.unique(labels, return_counts=True)
    share = counts / counts.sum() * k
    quota = np.floor(share).astype(int)
    if k >= len(classes):
        quota = np.maximum(quota, 1)
    while quota.sum() > k:
        quota[np.argmax(quota)] -= 1
    rest = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while quota.sum() < k:
        quota[rest[i % len(rest)]] += 1
        i += 1
    return {int(c): int(q) for c, q in zip(classes, quota)}


def _nearest(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    d = (queries**2).sum(1)[:, None] - 2 * queries @ keys.T + (keys**2).sum(1)[None, :]
    return np.argmin(d, axis=1)


def _attach(true_parent: np.ndarray, selected: np.ndarray, parent_features: np.ndarray) -> np.ndarray:
    """Synthetic parent index per selected child (see the module docstring)."""
    out = np.full(len(true_parent), -1, dtype=np.int64)
    if len(selected) == 0:
        return out
    position = {}
    for pos, row in enumerate(selected.tolist()):
        position.setdefault(row, pos)
    known = np.array([position.get(int(p), -1) for p in true_parent], dtype=np.int64)
    has_key = true_parent >= 0
    out[has_key] = known[has_key]
    orphan = has_key & (known < 0)
    if orphan.any():
        pf = np.asarray(parent_features, dtype=np.float64)
        out[orphan] = _nearest(pf[true_parent[orphan]], pf[selected])
    return out


def coreset(
    select: Selector,
    db: Database,
    features: dict[str, np.ndarray],
    reference: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
    max_candidates: int = 20000,
) -> SyntheticGraph:
    """A coreset of real rows with ``reference``'s schema and node count per table.

    Multiclass labels are one-hot (n, C), C taken from ``reference.y`` when it holds class
    probabilities, so bytes match the distilled graph exactly when that is the reference.
    """
    kind = task_kind(task.task_type)
    rng = np.random.default_rng(seed)
    schema, target = reference.schema, reference.target_table
    budget = reference.num_nodes()
    train = label_frame(task.train)
    cutoff = int(to_seconds(train[task.time_col]).max()) if len(train) else None
    rows: dict[str, np.ndarray] = {}
    y = np.zeros(0)
    for table in schema.tables:
        feats = np.asarray(features[table])
        if table == target:
            entities = train[task.entity_col].to_numpy(dtype=np.int64)
            labels = train[task.target_col].to_numpy()
            if kind == REGRESSION:
                picks = _take(select, feats[entities], budget[table], rng, max_candidates)
            else:
                labels = labels.astype(np.int64)
                parts = []
                for cls, k in _class_quota(labels, budget[table]).items():
                    members = np.flatnonzero(labels == cls)
                    parts.append(members[_take(select, feats[entities[members]], k, rng, max_candidates)])
                picks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            rows[table] = entities[picks]
            y = labels[picks]
        else:
            candidates = np.arange(len(feats))
            col = db.table_dict[table].time_col
            if col is not None and cutoff is not None:
                candidates = np.flatnonzero(to_seconds(db.table_dict[table].df[col]) <= cutoff)
            rows[table] = candidates[_take(select, feats[candidates], budget[table], rng, max_candidates)]
    if kind == MULTICLASS:
        ref_y = np.asarray(reference.y)
        width = ref_y.shape[1] if ref_y.ndim == 2 else int(train[task.target_col].max()) + 1
        y = np.eye(width, dtype=np.float32)[y.astype(np.int64)]
    x = {t: np.asarray(features[t], dtype=np.float32)[rows[t]] for t in schema.tables}
    parents = {
        rel.index: _attach(fkey_index(db, rel)[rows[rel.child]], rows[rel.parent], features[rel.parent])
        for rel in schema.relations
    }
    return SyntheticGraph(schema, target, x, parents, np.asarray(y, dtype=np.float32))


def random_coreset(
    db: Database,
    features: dict[str, np.ndarray],
    reference: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
) -> SyntheticGraph:
    """Uniformly sampled real rows (and labelled examples) at the reference budget."""
    return coreset(select_random, db, features, reference, task, seed)


def kcenter_coreset(
    db: Database,
    features: dict[str, np.ndarray],
    reference: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
) -> SyntheticGraph:
    """Greedy k-center rows on the embeddings: the coreset that covers feature space."""
    return coreset(select_kcenter, db, features, reference, task, seed)


def herding_coreset(
    db: Database,
    features: dict[str, np.ndarray],
    reference: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
) -> SyntheticGraph:
    """Herding rows on the embeddings: the coreset whose mean tracks the data mean."""
    return coreset(select_herding, db, features, reference, task, seed)


def centroid_baseline(
    structure: SyntheticGraph,
    centroids: dict[str, np.ndarray],
    entity_clusters: np.ndarray,
    task: TaskData,
    num_classes: int | None = None,
    seed: int = 0,
) -> SyntheticGraph:
    """Cluster centroids without KRR: the SBM graph with x = its blocks' centroids and
    y = the mean train label of each target block (``entity_clusters`` = the entity
    table's pseudo-labels). It isolates what KRR adds over its own starting point."""
    train = label_frame(task.train)
    targets = label_targets(train, task.target_col, task.task_type, num_classes)
    blocks = np.asarray(entity_clusters, dtype=np.int64)[train[task.entity_col].to_numpy(dtype=np.int64)]
    return init_from_centroids(structure, centroids, (blocks, targets), seed, noise=0.0)


BASELINES = ("centroids", "random", "kcenter", "herding")


@dataclass
class BaselineGraphs:
    """The graphs T2G is compared with at its own budget, and the seconds each took to build."""

    graphs: dict[str, SyntheticGraph]
    seconds: dict[str, float]

    def save(self, path: Path) -> Path:
        path = Path(path)
        names = list(self.graphs)
        for i, name in enumerate(names):
            self.graphs[name].save(path / f"graph_{i}")
        (path / "baselines.json").write_text(json.dumps({"names": names, "seconds": self.seconds}))
        return path

    @classmethod
    def load(cls, path: Path) -> "BaselineGraphs":
        path = Path(path)
        meta = json.loads((path / "baselines.json").read_text())
        graphs = {name: SyntheticGraph.load(path / f"graph_{i}") for i, name in enumerate(meta["names"])}
        return cls(graphs, meta["seconds"])


def build_baselines(
    db: Database,
    pretraining: PretrainResult,
    structure: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> BaselineGraphs:
    """Every baseline at ``structure``'s budget: the centroid start of KRR and three coresets."""
    embeddings = pretraining.embeddings
    builders = {
        "centroids": lambda: centroid_baseline(
            structure, pretraining.centroids, pretraining.pseudo_labels[task.entity_table], task, seed=seed
        ),
        "random": lambda: random_coreset(db, embeddings, structure, task, seed=seed),
        "kcenter": lambda: kcenter_coreset(db, embeddings, structure, task, seed=seed),
        "herding": lambda: herding_coreset(db, embeddings, structure, task, seed=seed),
    }
    graphs, seconds = {}, {}
    for name in BASELINES:
        start = time.perf_counter()
        graphs[name] = builders[name]()
        seconds[name] = time.perf_counter() - start
        log(f"built {name} at the same budget in {seconds[name]:.1f}s")
    return BaselineGraphs(graphs, seconds)
