"""The evaluation protocol of one database x task x budget: T2G against the full data, and
optionally against everything else at its budget.

The gate (``evaluation_scores``) scores ``t2g`` alone next to each model on the full
database and the GBM reference; its statistic is T2G's utility retention of its best model
against the best full-data reference. The comparison (``comparison_scores``) adds the other
methods at the same budget: ``t2g_no_pseudo`` (the ablation without the pseudo-label term),
the baselines of ``baselines.build_baselines`` (``centroids``: the SBM graph with cluster
centroids, no KRR; the subgraph coresets and herding histories) and, on request, the
``few_labels`` reference. Each method's graph is built by a stage of its own; this module
trains and scores on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd
from relbench.base import Database

from t2g_lib.baselines import BaselineGraphs
from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.full_training import FullTraining
from t2g_lib.gbm_reference import GBMReference
from t2g_lib.krr import Distillation
from t2g_lib.pretrain import PretrainResult
from t2g_lib.task_data import TaskData


@dataclass
class EvalSetup:
    """What one evaluation trains on and how: every method's graph and the training knobs."""

    db: Database
    task: TaskData
    pretraining: PretrainResult
    distilled: Distillation
    full: FullTraining
    gbm: GBMReference | None
    models: list[str]
    ablation: Distillation | None = None  # the comparison's methods; None: T2G alone (the gate)
    baselines: BaselineGraphs | None = None
    recipe: DistilledRecipe = DistilledRecipe()  # how every model trains on a distilled graph
    few_labels: bool = False  # also the full database with as many train labels as T2G's graph holds
    seed: int = 0
    device: object = "cpu"
    log: Callable[[str], None] = print


@dataclass
class EvalReport:
    """The score table, T2G's retention (the utility gate's statistic) and the leakage report."""

    scores: pd.DataFrame
    t2g_retention: float
    leakage: dict


def methods(setup: EvalSetup) -> tuple[dict, dict[str, float]]:
    """Every method's graph at the T2G budget, and the seconds each took to build."""
    graphs, seconds = {"t2g": setup.distilled.graph}, {"t2g": setup.distilled.seconds}
    if setup.ablation is not None:
        graphs["t2g_no_pseudo"], seconds["t2g_no_pseudo"] = setup.ablation.graph, setup.ablation.seconds
    if setup.baselines is not None:
        graphs.update(setup.baselines.graphs)
        seconds.update(setup.baselines.seconds)
    return graphs, seconds


def run_evaluation(setup: EvalSetup) -> EvalReport:
    """Train each model on each method's graph; score on real test next to the full data."""
    from t2g_lib.evaluate import evaluate_methods

    graphs, seconds = methods(setup)
    scores = evaluate_methods(
        graphs, setup.models, setup.db, setup.pretraining.embeddings, setup.task, full=setup.full,
        seeds=(setup.seed,), gbm=setup.gbm,
        few_labels=setup.distilled.graph.num_examples() if setup.few_labels else None,
        distill_seconds=seconds, recipe=setup.recipe,
        trained=[d.judged for d in (setup.distilled, setup.ablation) if d is not None and d.judged is not None],
        device=setup.device, log=setup.log,
    )
    t2g = scores[scores["method"] == "t2g"]["utility_retention"]
    retention = float(t2g.max()) if len(t2g) and not t2g.isna().all() else math.nan
    return EvalReport(scores, retention, scores.attrs["leakage"])
