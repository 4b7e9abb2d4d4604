"""The evaluation protocol of one database x task x budget: T2G against everything else.

Methods at the same budget: ``t2g`` (KRR-distilled), ``t2g_no_pseudo`` (the ablation
without the pseudo-label term), ``centroids`` (SBM graph with cluster centroids, no KRR),
and the coresets ``random``, ``kcenter`` and ``herding``; plus each model on the full
database. The gate statistic is T2G's utility retention of its best model. Full-data
scores are shared by a task's budgets through ``full_cache_dir`` (``full_cache.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from relbench.base import Database

from t2g_lib.graph import SyntheticGraph
from t2g_lib.krr import Distillation
from t2g_lib.pretrain import PretrainResult
from t2g_lib.task_data import TaskData


@dataclass
class EvalSetup:
    db: Database
    task: TaskData
    pretraining: PretrainResult
    structure: SyntheticGraph
    distilled: Distillation
    models: list[str]
    epochs: int = 5
    epochs_distilled: int = 100
    seed: int = 0
    device: object = "cpu"
    log: Callable[[str], None] = print
    full_cache_dir: Path | None = None
    methods: list[str] = field(
        default_factory=lambda: ["t2g", "t2g_no_pseudo", "centroids", "random", "kcenter", "herding"]
    )


@dataclass
class EvalReport:
    """The score table, T2G's retention (the utility gate's statistic) and the leakage report."""

    scores: pd.DataFrame
    t2g_retention: float
    leakage: dict


def build_methods(setup: EvalSetup) -> tuple[dict, dict[str, float]]:
    """Every method's distilled graph at the T2G budget, and the seconds each took."""
    from t2g_lib import baselines
    from t2g_lib.krr import KRRConfig, distill_features

    task = setup.task
    pre = setup.pretraining
    structure = setup.structure
    graphs = {"t2g": setup.distilled.graph}
    seconds = {"t2g": setup.distilled.seconds}
    db, emb, seed = setup.db, pre.embeddings, setup.seed
    builders = {
        "t2g_no_pseudo": lambda: distill_features(
            structure, emb, pre.pseudo_labels, pre.centroids, db, task,
            KRRConfig(seed=seed, beta=0.0), device=setup.device, log=setup.log,
        )[0],
        "centroids": lambda: baselines.centroid_baseline(
            structure, pre.centroids, pre.pseudo_labels[task.entity_table], task, seed=seed
        ),
        "random": lambda: baselines.random_coreset(db, emb, structure, task, seed=seed),
        "kcenter": lambda: baselines.kcenter_coreset(db, emb, structure, task, seed=seed),
        "herding": lambda: baselines.herding_coreset(db, emb, structure, task, seed=seed),
    }
    for name in setup.methods:
        if name in graphs:
            continue
        start = time.perf_counter()
        graphs[name] = builders[name]()
        seconds[name] = time.perf_counter() - start
        setup.log(f"built {name} at the same budget in {seconds[name]:.1f}s")
    return graphs, seconds


def run_evaluation(setup: EvalSetup) -> EvalReport:
    """Train each model on each method's graph and on the full data; score on real test."""
    from t2g_lib.evaluate import evaluate_methods
    from t2g_lib.full_cache import FullRunCache, arrays_digest, labels_digest, run_key

    task = setup.task
    graphs, seconds = build_methods(setup)
    features = setup.pretraining.embeddings
    cache = None
    if setup.full_cache_dir is not None:
        cache = FullRunCache(setup.full_cache_dir, run_key(
            features=arrays_digest(features), labels=labels_digest(task.train, task.val, task.test),
            task=task.name, epochs=setup.epochs, device=str(setup.device),
        ))
    scores = evaluate_methods(
        graphs, setup.models, setup.db, features, task, full=True, seeds=(setup.seed,), distill_seconds=seconds, epochs_full=setup.epochs,
        epochs_distilled=setup.epochs_distilled,
        device=setup.device, full_cache=cache, log=setup.log,
    )
    t2g = scores[scores["method"] == "t2g"]["utility_retention"]
    retention = float(t2g.max()) if len(t2g) and not t2g.isna().all() else math.nan
    return EvalReport(scores, retention, scores.attrs["leakage"])
