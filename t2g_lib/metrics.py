"""The one task-type vocabulary, and everything that depends on it: the metric a task is
judged by, its training loss, which score is better, utility retention.

Task types are relbench's ``TaskType``; RelBench's spellings (``binary_classification``,
``multiclass_classification``, ``regression``) and the short ``binary`` / ``multiclass``
are accepted wherever a task type is taken, and ``task_kind`` turns any of them into the enum.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from relbench.base import TaskType
from sklearn import metrics as skm

BINARY = TaskType.BINARY_CLASSIFICATION
MULTICLASS = TaskType.MULTICLASS_CLASSIFICATION
REGRESSION = TaskType.REGRESSION
_SUPPORTED = (BINARY, MULTICLASS, REGRESSION)
_SHORT = {"binary": BINARY, "multiclass": MULTICLASS}
_PRIMARY = {BINARY: ("auroc", True), MULTICLASS: ("accuracy", True), REGRESSION: ("mae", False)}


def task_kind(task_type: TaskType | str) -> TaskType:
    """relbench's ``TaskType`` for any accepted spelling; unsupported types are refused."""
    if isinstance(task_type, TaskType):
        kind = task_type
    else:
        key = str(task_type).lower()
        kind = _SHORT.get(key) or next((t for t in TaskType if t.value == key), None)
    if kind not in _SUPPORTED:
        names = sorted([t.value for t in _SUPPORTED] + list(_SHORT))
        raise ValueError(f"unsupported task type {task_type!r}; expected one of {names}")
    return kind


def primary_metric(task_type: TaskType | str) -> tuple[str, bool]:
    """The metric a task is judged by and whether higher is better."""
    return _PRIMARY[task_kind(task_type)]


def is_better(value: float, best: float, task_type: TaskType | str) -> bool:
    """Whether ``value`` beats ``best`` on the task's primary metric (NaN never does; any
    finite value beats a NaN ``best``)."""
    if not np.isfinite(value):
        return False
    if not np.isfinite(best):
        return True
    return value > best if primary_metric(task_type)[1] else value < best


def loss(task_type: TaskType | str, raw: torch.Tensor, y: torch.Tensor, regression: str = "mse") -> torch.Tensor:
    """Training loss of raw outputs: BCE with logits (hard or soft labels), cross-entropy
    (class ids or class probabilities), on standardised regression targets MSE (the KRR
    surrogate's least squares) or ``regression="l1"`` (what a GNN judged by MAE trains on,
    as in RelBench)."""
    kind = task_kind(task_type)
    if kind == BINARY:
        return F.binary_cross_entropy_with_logits(raw.view(-1), y.float().view(-1))
    if kind == MULTICLASS:
        return F.cross_entropy(raw, y.long() if y.ndim == 1 else y.float())
    if regression == "l1":
        return F.l1_loss(raw.view(-1), y.float().view(-1))
    return F.mse_loss(raw.view(-1), y.float().view(-1))


def score(task_type, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of predictions against real labels.

    binary: ``y_pred`` are scores or probabilities of class 1 -> AUROC (RelBench's
    ``roc_auc``). multiclass: ``y_pred`` are class probabilities (n, C) or class ids (n,)
    -> accuracy and macro-F1. regression: MAE.
    """
    from relbench.metrics import roc_auc

    kind = task_kind(task_type)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if kind == BINARY:
        return {"auroc": float(roc_auc(y_true.astype(int), y_pred.reshape(-1).astype(float)))}
    if kind == MULTICLASS:
        labels = y_pred.argmax(axis=1) if y_pred.ndim == 2 else y_pred.astype(int)
        y_true = y_true.astype(int)
        return {
            "accuracy": float(skm.accuracy_score(y_true, labels)),
            "macro_f1": float(skm.f1_score(y_true, labels, average="macro")),
        }
    return {"mae": float(skm.mean_absolute_error(y_true.astype(float), y_pred.astype(float)))}


def trivial_score(task_type, y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Primary metric of the trivial predictor that ignores the input.

    binary: 0.5 (AUROC of a constant score); multiclass: accuracy of always predicting
    the train majority class; regression: MAE of always predicting the train median.
    """
    kind = task_kind(task_type)
    if kind == BINARY:
        return 0.5
    y_test = np.asarray(y_test)
    if kind == MULTICLASS:
        classes, counts = np.unique(np.asarray(y_train).astype(int), return_counts=True)
        return float(np.mean(y_test.astype(int) == classes[np.argmax(counts)]))
    median = float(np.median(np.asarray(y_train, dtype=float)))
    return float(np.mean(np.abs(y_test.astype(float) - median)))


def utility_retention(distilled: float, full: float, task_type, baseline: float | None = None) -> float:
    """Share of full-data training's improvement over the trivial predictor that is kept.

    retention = (distilled - baseline) / (full - baseline), where ``baseline`` is the
    trivial predictor's score (``trivial_score``). For AUROC the baseline is chance, 0.5,
    the default, so retention = (distilled - 0.5) / (full - 0.5). For MAE (lower is better)
    the same formula equals (mae_const - distilled) / (mae_const - full) with mae_const the
    MAE of predicting the train median. For accuracy the baseline is the majority-class
    accuracy. 1 means as good as full data, 0 no better than the trivial predictor,
    negative worse than it; NaN when full data itself does not beat the baseline.
    Accuracy and MAE have no universal baseline, so one must be passed.
    """
    kind = task_kind(task_type)
    if baseline is None:
        if kind != BINARY:
            raise ValueError(f"utility_retention for {kind} needs the trivial predictor's score")
        baseline = 0.5
    gain = full - baseline
    _, higher_is_better = primary_metric(kind)
    if not np.isfinite(gain) or (gain <= 0 if higher_is_better else gain >= 0):
        return float("nan")
    return float((distilled - baseline) / gain)
