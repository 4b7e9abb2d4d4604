"""Task metrics and utility retention, the numbers the evaluation reports.

Task types may be given as RelBench spells them (``binary_classification``,
``multiclass_classification``, ``regression``, or the ``TaskType`` enum) or short
(``binary``, ``multiclass``); ``task_kind`` maps all of them to the short form.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

_KINDS = {
    "binary": "binary",
    "binary_classification": "binary",
    "multiclass": "multiclass",
    "multiclass_classification": "multiclass",
    "regression": "regression",
}


def task_kind(task_type) -> str:
    """``"binary"``, ``"multiclass"`` or ``"regression"`` for any accepted spelling."""
    key = str(getattr(task_type, "value", task_type)).lower()
    if key not in _KINDS:
        raise ValueError(f"unsupported task type {task_type!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[key]


def primary_metric(task_type) -> tuple[str, bool]:
    """The metric a task is judged by and whether higher is better."""
    return {
        "binary": ("auroc", True),
        "multiclass": ("accuracy", True),
        "regression": ("mae", False),
    }[task_kind(task_type)]


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
    if kind == "binary":
        return {"auroc": float(roc_auc(y_true.astype(int), y_pred.reshape(-1).astype(float)))}
    if kind == "multiclass":
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
    if kind == "binary":
        return 0.5
    y_test = np.asarray(y_test)
    if kind == "multiclass":
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
        if kind != "binary":
            raise ValueError(f"utility_retention for {kind} needs the trivial predictor's score")
        baseline = 0.5
    gain = full - baseline
    _, higher_is_better = primary_metric(kind)
    if not np.isfinite(gain) or (gain <= 0 if higher_is_better else gain >= 0):
        return float("nan")
    return float((distilled - baseline) / gain)
