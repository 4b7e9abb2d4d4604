"""Stage ``gbm_reference``: what a practitioner would use instead of a GNN, a gradient-boosting
model on per-label aggregates (``entity_aggregates.py``), scored like every GNN.

It sits next to ``full_training`` as a second full-data reference: utility retention is
measured against the better of the two, so a distillation cannot look good merely because
the GNN it is compared with is weak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.entity_aggregates import label_features
from t2g_lib.eval_splits import label_classes
from t2g_lib.full_training import FULL
from t2g_lib.metrics import BINARY, MULTICLASS, primary_metric, score, task_kind
from t2g_lib.task_data import TaskData

GBM = "gbm"
"""Model name of the reference in the score table (its method is ``full``)."""

PARAMS = dict(learning_rate=0.1, max_iter=1000, max_leaf_nodes=31, early_stopping=True,
              validation_fraction=0.1, n_iter_no_change=30, categorical_features="from_dtype")
"""A practitioner's default; the number of rounds is set by early stopping on 10% of train."""


@dataclass
class GBMReference:
    """The reference's scored record (test metrics, ``val_value``, ``train_seconds``; its
    ``storage_bytes`` are the full database's, set by the evaluation), the feature names it used and the seconds spent building them."""

    record: dict
    features: list[str]
    feature_seconds: float
    rounds: int


def gbm_model(kind, seed: int):
    """A classifier, or a regressor fitted to absolute error (the MAE the task is judged by)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if kind == BINARY or kind == MULTICLASS:
        return HistGradientBoostingClassifier(**PARAMS, random_state=seed)
    return HistGradientBoostingRegressor(loss="absolute_error", **PARAMS, random_state=seed)


def gbm_predict(model, kind, x: pd.DataFrame, classes: int) -> np.ndarray:
    """Probabilities of class 1 (binary), per-class probabilities (multiclass), or targets."""
    if kind == BINARY:
        return model.predict_proba(x)[:, 1]
    if kind == MULTICLASS:
        out = np.zeros((len(x), classes))
        out[:, model.classes_.astype(int)] = model.predict_proba(x)
        return out
    return model.predict(x)


def fit_gbm_reference(
    db: Database,
    task: TaskData,
    column_types: dict[str, dict[str, str]],
    hidden: set[tuple[str, str]],
    seed: int = 0,
    log=lambda _: None,
) -> GBMReference:
    """Build the aggregates of every split, fit on train, score on real val and test."""
    kind = task_kind(task.task_type)
    metric, _ = primary_metric(kind)
    t0 = time.perf_counter()
    x = {s: label_features(db, task, getattr(task, s), column_types, hidden) for s in ("train", "val", "test")}
    feature_s = time.perf_counter() - t0
    y = {s: getattr(task, s)[task.target_col].to_numpy() for s in ("train", "val", "test")}
    classes = label_classes(task)
    t0 = time.perf_counter()
    model = gbm_model(kind, seed).fit(x["train"], y["train"])
    fit_s = time.perf_counter() - t0
    val = score(kind, y["val"], gbm_predict(model, kind, x["val"], classes))[metric]
    log(f"gbm: {x['train'].shape[1]} features per label ({feature_s:.1f}s), {model.n_iter_} rounds "
        f"({fit_s:.1f}s), val {metric} {val:.4f}")
    record = {
        "model": GBM, "method": FULL, "seed": seed,
        **score(kind, y["test"], gbm_predict(model, kind, x["test"], classes)),
        "val_value": val, "distill_seconds": 0.0, "train_seconds": fit_s,
    }
    return GBMReference(record, list(x["train"].columns), feature_s, int(model.n_iter_))
