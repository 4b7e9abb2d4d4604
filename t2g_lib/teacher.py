"""Teacher soft labels: what the distilled graph's training examples are labelled with.

A distilled graph holds a few thousand labelled examples where the database holds a hundred
thousand; a hard 0/1 label tells the GNN trained on it one bit per example. Labelling each
kept example instead with the prediction of a model fitted on the whole database (label
distillation: the soft labels carry what the other examples taught) lets the few examples
teach more. The teacher is the GBM reference's model (``gbm_reference.py``: DuckDB
aggregates of rows stamped <= T, HistGradientBoosting), **cross-fitted by entity**: the
entities are split into ``folds`` groups and each group's labels are predicted by a model
fitted on the other groups only, so no example is labelled by a model that saw its label.
Binary tasks get probabilities, regression tasks predicted values; multiclass tasks keep their
hard labels (``TeacherLabels.soft`` is None). ``TeacherConfig.weight`` below 1 blends the
teacher's prediction with the hard label (knowledge distillation's mix of the two targets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.entity_aggregates import label_features
from t2g_lib.gbm_reference import gbm_model, gbm_predict
from t2g_lib.metrics import BINARY, MULTICLASS, primary_metric, score, task_kind
from t2g_lib.task_data import TaskData
from t2g_lib.teacher_config import TeacherConfig


@dataclass
class TeacherLabels:
    """Out-of-fold teacher predictions for the task's train labels (rows of ``task.train``
    in order), how well they score against the hard labels, and what they cost."""

    soft: np.ndarray | None
    metric: str
    score: float
    seconds: float
    folds: int

    def apply(self, task: TaskData) -> TaskData:
        """``task`` with its train targets replaced by the teacher's (unchanged without any)."""
        if self.soft is None:
            return task
        if len(self.soft) != len(task.train):
            raise ValueError(f"teacher labels for {len(self.soft)} train rows, the task has {len(task.train)}")
        train = task.train.reset_index(drop=True).assign(**{task.target_col: self.soft})
        return replace(task, train=train)


def _fold_predictions(kind, x: pd.DataFrame, y: np.ndarray, fit_rows: np.ndarray, rows: np.ndarray,
                      seed: int, max_fit: int | None = None) -> np.ndarray:
    """The teacher fitted on ``fit_rows`` (at most ``max_fit`` of them, drawn with ``seed``)
    predicting ``rows`` (only those: prediction is per row); a constant (the fitted rows'
    mean) when they hold one class or too few rows to fit."""
    if max_fit is not None and len(fit_rows) > max_fit:
        fit_rows = np.sort(np.random.default_rng([seed, 5]).choice(fit_rows, size=max_fit, replace=False))
    y_fit = y[fit_rows]
    if len(y_fit) < 20 or (kind == BINARY and len(np.unique(y_fit)) < 2):
        return np.full(len(rows), float(np.mean(y_fit)) if len(y_fit) else 0.5)
    model = gbm_model(kind, seed).fit(x.iloc[fit_rows], y_fit)
    return gbm_predict(model, kind, x.iloc[rows], 2)


def entity_folds(entity: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold of each label: one seeded draw per entity, so all of an entity's labels share it."""
    return np.random.default_rng(seed).integers(0, folds, size=int(entity.max(initial=0)) + 1)[entity]


def teacher_labels(
    db: Database,
    task: TaskData,
    column_types: dict[str, dict[str, str]],
    hidden: set[tuple[str, str]],
    config: TeacherConfig = TeacherConfig(),
    log=lambda _: None,
) -> TeacherLabels:
    """Cross-fitted GBM predictions for every train label of ``task`` (see the module doc)."""
    if config.folds < 2 or not 0.0 <= config.weight <= 1.0:
        raise ValueError(f"teacher needs folds >= 2 and a weight in [0, 1], got {config.folds} and {config.weight}")
    folds, seed = config.folds, config.seed
    kind = task_kind(task.task_type)
    metric, _ = primary_metric(kind)
    started = time.perf_counter()
    if kind == MULTICLASS:
        log("teacher: a multiclass task keeps its hard labels")
        return TeacherLabels(None, metric, float("nan"), 0.0, folds)
    train = task.train.reset_index(drop=True)
    x = label_features(db, task, train, column_types, hidden)
    y = train[task.target_col].to_numpy(dtype=np.float64)
    entity = train[task.entity_col].to_numpy(dtype=np.int64)
    group = entity_folds(entity, folds, seed)
    soft = np.empty(len(y), dtype=np.float64)
    for fold in range(folds):
        held_out = group == fold
        soft[held_out] = _fold_predictions(kind, x, y, np.flatnonzero(~held_out), np.flatnonzero(held_out), seed,
                                           config.fit_rows)
    quality = float(score(kind, y, soft)[metric]) if kind != BINARY or len(np.unique(y)) == 2 else float("nan")
    soft = config.weight * soft + (1.0 - config.weight) * y
    seconds = time.perf_counter() - started
    log(f"teacher: {folds}-fold GBM labels for {len(y):,} train examples, out-of-fold {metric} {quality:.4f}, "
        f"weight {config.weight:g} ({seconds:.1f}s)")
    return TeacherLabels(soft, metric, quality, seconds, folds)
