"""Where KRR distillation starts (``KRRConfig.start``).

``centroids`` (the paper's start): the SBM structure, each synthetic node at its block's
centroid, each target node at its block's mean train label. ``herding``: a herding subgraph
coreset at the same bytes (``subgraph_coreset.py``): real labelled examples, each with its
true temporal neighbourhood, features and ages, and one hard label each. At large budgets
the coreset is the stronger graph (it holds several times more labelled examples than the
SBM graph at equal bytes), so KRR refines it rather than climbing from centroids towards it.
Its nodes get the block of their nearest centroid, which the pseudo-label term matches.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
from relbench.base import Database

from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.graph import SyntheticGraph
from t2g_lib.models import ModelSpec
from t2g_lib.pretrain import sq_dists
from t2g_lib.selectors import select_herding
from t2g_lib.subgraph_coreset import subgraph_coreset
from t2g_lib.task_data import TaskData

STARTS = ("centroids", "herding")
FALLBACKS = ("none", "subgraphs", "histories")
"""What ``coreset_fallback`` may judge against the KRR graph: nothing, or the herding coreset
of examples (``subgraphs``) or of entity histories (``histories``)."""


def init_from_centroids(
    structure: SyntheticGraph,
    centroids: dict[str, np.ndarray],
    train_labels: tuple[np.ndarray, np.ndarray],
    seed: int,
    noise: float,
) -> SyntheticGraph:
    """Centroid start: each synthetic node's block centroid (+ noise), mean label per block.

    ``train_labels = (entity_block, targets)``: the cluster of each labelled example's entity
    row and its ``label_targets``. A target block without labelled examples gets the overall
    mean. ``noise`` scales gaussian noise by the std of the table's centroid entries, so
    nodes of one block start apart. Tables without ``blocks`` keep their ``x``.
    """
    rng = np.random.default_rng(seed)
    x: dict[str, np.ndarray] = {}
    for table in structure.schema.tables:
        if table in structure.blocks:
            cent = np.asarray(centroids[table], dtype=np.float32)
            base = cent[np.asarray(structure.blocks[table], dtype=np.int64)]
            scale = float(cent.std()) if cent.size else 0.0
        else:
            base = np.asarray(structure.x[table], dtype=np.float32)
            scale = float(base.std()) if base.size else 0.0
        x[table] = (base + noise * scale * rng.standard_normal(base.shape)).astype(np.float32)
    entity_block, targets = (np.asarray(a) for a in train_labels)
    overall = targets.mean(axis=0)
    syn_blocks = np.asarray(structure.blocks[structure.target_table], dtype=np.int64)
    y = np.empty((len(syn_blocks),) + targets.shape[1:], dtype=np.float64)
    for b in np.unique(syn_blocks):
        members = entity_block == b
        y[syn_blocks == b] = targets[members].mean(axis=0) if members.any() else overall
    return SyntheticGraph(
        structure.schema, structure.target_table, x, copy.deepcopy(structure.parents),
        y.astype(np.float32), copy.deepcopy(structure.blocks),
    ).with_codec(structure.codec)


def nearest_blocks(x: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """The index of each row's nearest centroid (squared euclidean), ``chunk`` rows at a time."""
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    out = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), chunk):
        out[i : i + chunk] = sq_dists(x[i : i + chunk], c).argmin(1)
    return out


def coreset_start(
    db: Database,
    features: dict[str, np.ndarray],
    structure: SyntheticGraph,
    centroids: dict[str, np.ndarray],
    task: TaskData,
    seed: int,
    budget: int,
    num_classes: int | None = None,
    spec: ModelSpec = ModelSpec(),
    histories: bool = False,
    feature_dim: int = 0,
    examples_per_entity: int | None = None,
) -> SyntheticGraph:
    """The herding subgraph coreset in ``budget`` bytes (of entity histories with
    ``histories``, each with at most ``examples_per_entity`` label times), stored as ``structure`` stores rows (or, with ``feature_dim``, as that
    many components in the same precision, its own codec counted in the bytes), its nodes in
    their nearest centroid's block; a multiclass ``y`` is widened to ``num_classes`` columns."""
    reference = structure
    if feature_dim and structure.codec is not None:
        codec = FeatureCodec.fit(features, feature_dim, structure.codec.precision, seed=seed)
        reference = replace(structure, codec=codec)
    graph = subgraph_coreset(select_herding, db, features, reference, task, seed, spec, budget=budget,
                             histories=histories, examples_per_entity=examples_per_entity)
    blocks = {t: nearest_blocks(graph.x[t], centroids[t]) for t in structure.blocks if t in centroids}

    def widen(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and num_classes is not None and y.shape[1] < num_classes:
            return np.pad(y, ((0, 0), (0, num_classes - y.shape[1])))
        return y

    earlier = None if graph.earlier is None else replace(graph.earlier, y=widen(graph.earlier.y))
    return replace(graph, blocks=blocks, y=widen(graph.y), earlier=earlier)
