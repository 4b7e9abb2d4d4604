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
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from relbench.base import Database

from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.graph import SyntheticGraph
from t2g_lib.models import ModelSpec
from t2g_lib.pseudo_labels import sq_dists
from t2g_lib.selectors import select_herding
from t2g_lib.subgraph_coreset import CoresetUnits, choose_units, history_entity_gain
from t2g_lib.task_data import TaskData

STARTS = ("centroids", "herding")
FALLBACKS = ("none", "subgraphs", "histories")
"""What ``coreset_fallback`` may judge against the KRR graph: nothing, or the herding coreset
of examples (``subgraphs``) or of entity histories (``histories``)."""
THIN_MIN_GAIN = 1.25
"""Histories cut to fewer label times are judged beside whole ones only where the same bytes
hold at least this many times the entities; elsewhere they only lose examples. Lahman
player-retention @ 0.01: one label time each held 1.11x the players and scored test AUROC
0.712 against 0.781; Complete Journey household-spend: 3.8x the households, MAE 33.8 against
34.7 (``benchmarks/ladder.py`` rungs 22-23)."""


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


def label_times_text(times: int) -> str:
    """``coreset_label_times`` entry ``times`` in words, for logs."""
    return "every label time" if times == 0 else f"at most {times} label time{'s' if times > 1 else ''}"


def herding_coresets(
    db: Database,
    features: dict[str, np.ndarray],
    structure: SyntheticGraph,
    centroids: dict[str, np.ndarray],
    tasks: dict[str, TaskData],
    seed: int,
    budget: int,
    num_classes: int | None = None,
    spec: ModelSpec = ModelSpec(),
    histories: bool = False,
    feature_dim: int = 0,
    label_times: tuple[int, ...] = (0,),
    log: Callable[[str], None] = lambda _: None,
) -> dict[tuple[int, str], SyntheticGraph]:
    """Herding subgraph coresets in ``budget`` bytes, keyed by the label times each entity
    history keeps (0: every one; a coreset of examples, without ``histories``, is keyed 0) and
    the name of their labelling: ``tasks`` holds the same train examples under each (e.g. the
    teacher's labels and their own), the first choosing which examples fit. Each is stored as
    ``structure`` stores rows (or, with ``feature_dim``, as that many components in the same
    precision, its own codec counted in the bytes), its nodes in their nearest centroid's
    block, a multiclass ``y`` widened to ``num_classes`` columns. With every label time among
    ``label_times``, a history cut to fewer is built only where it holds ``THIN_MIN_GAIN`` times
    the entities (``history_entity_gain``)."""
    reference = _coreset_reference(features, structure, seed, feature_dim)
    first = next(iter(tasks.values()))
    out = {}
    for times in label_times if histories else (0,):
        if times and 0 in label_times:
            gain = history_entity_gain(db, features, reference, first, times, budget, seed, spec)
            log(f"entity histories of {label_times_text(times)} hold {gain:.2f}x the entities in the same bytes"
                f"{'' if gain >= THIN_MIN_GAIN else ': not judged'}")
            if gain < THIN_MIN_GAIN:
                continue
        units = CoresetUnits(db, features, reference, first, spec, histories, times or None)
        chosen = choose_units(select_herding, units, features, budget, seed)
        for name, task in tasks.items():
            labelled = units if task is first else units.relabelled(task)
            out[times, name] = _in_blocks(labelled.build(chosen), structure, centroids, num_classes)
    return out


def _coreset_reference(features: dict[str, np.ndarray], structure: SyntheticGraph, seed: int,
                       feature_dim: int) -> SyntheticGraph:
    """``structure``, or with ``feature_dim`` the same graph with a codec of that many components."""
    if feature_dim and structure.codec is not None:
        return replace(structure, codec=FeatureCodec.fit(features, feature_dim, structure.codec.precision, seed=seed))
    return structure


def _in_blocks(graph: SyntheticGraph, structure: SyntheticGraph, centroids: dict[str, np.ndarray],
               num_classes: int | None) -> SyntheticGraph:
    """``graph``'s nodes in their nearest centroid's block, a multiclass ``y`` widened."""
    blocks = {t: nearest_blocks(graph.x[t], centroids[t]) for t in structure.blocks if t in centroids}

    def widen(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and num_classes is not None and y.shape[1] < num_classes:
            return np.pad(y, ((0, 0), (0, num_classes - y.shape[1])))
        return y

    earlier = None if graph.earlier is None else replace(graph.earlier, y=widen(graph.earlier.y))
    return replace(graph, blocks=blocks, y=widen(graph.y), earlier=earlier)
