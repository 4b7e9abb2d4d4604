"""Teacher soft labels: out of fold (no example labelled by a model that saw its label),
informative, and applied to the train split only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

from t2g_lib.teacher import TeacherConfig, entity_folds, teacher_labels
from t2g_lib.task_data import TaskData

T0 = pd.Timestamp("2024-06-01")
TYPES = {"users": {"id": "key", "age": "numerical"},
         "orders": {"order_id": "key", "user_id": "key", "amount": "numerical", "at": "timestamp"}}


def _fixture(n_users: int = 300, task_type: str = "binary_classification"):
    """Users with 0-6 orders in the 30 days before each label time; the label is 1 for 3 or more."""
    rng = np.random.default_rng(0)
    times = [T0 - pd.Timedelta(days=60), T0 - pd.Timedelta(days=30), T0]
    orders, labels = [], []
    for u in range(n_users):
        for t in times:
            n = int(rng.integers(0, 7))
            days = rng.uniform(0.5, 29.5, size=n)
            orders += [(u, float(rng.uniform(1, 10)), t - pd.Timedelta(days=float(d))) for d in days]
            labels.append((t, u, int(n >= 3)))
    orders = pd.DataFrame(orders, columns=["user_id", "amount", "at"]).assign(order_id=lambda d: np.arange(len(d)))
    users = pd.DataFrame({"id": np.arange(n_users), "age": rng.integers(20, 60, n_users)})
    db = Database({"users": Table(users, {}, "id", None),
                   "orders": Table(orders, {"user_id": "users"}, "order_id", "at")})
    train = pd.DataFrame(labels, columns=["ts", "user_id", "y"])
    task = TaskData("t", task_type, "users", "user_id", "ts", "y", train, train.head(10), train.head(10),
                    pd.Timedelta(days=30))
    return db, task


def test_teacher_labels_are_out_of_fold_and_informative():
    db, task = _fixture()
    teacher = teacher_labels(db, task, TYPES, set())
    assert teacher.soft.shape == (len(task.train),) and ((teacher.soft >= 0) & (teacher.soft <= 1)).all()
    assert teacher.score > 0.9  # the label is a count the aggregates hold

    # Flip every label of fold 0's entities: their soft labels come from fold 1's model only.
    fold = entity_folds(task.train["user_id"].to_numpy(), teacher.folds, 0)
    flipped = task.train.assign(y=np.where(fold == 0, 1 - task.train["y"], task.train["y"]))
    other = teacher_labels(db, TaskData(**{**task.__dict__, "train": flipped}), TYPES, set())
    np.testing.assert_array_equal(other.soft[fold == 0], teacher.soft[fold == 0])
    assert not np.array_equal(other.soft[fold == 1], teacher.soft[fold == 1])  # fitted on the flipped labels

    again = teacher_labels(db, task, TYPES, set())
    np.testing.assert_array_equal(again.soft, teacher.soft)  # same seed, same labels


def test_apply_replaces_the_train_targets_only_and_multiclass_keeps_hard_labels():
    db, task = _fixture(60)
    teacher = teacher_labels(db, task, TYPES, set(), TeacherConfig(seed=1))
    soft = teacher.apply(task)
    np.testing.assert_array_equal(soft.train["y"].to_numpy(), teacher.soft)
    assert soft.val is task.val and soft.test is task.test
    multiclass = TaskData(**{**task.__dict__, "task_type": "multiclass_classification"})
    none = teacher_labels(db, multiclass, TYPES, set())
    assert none.soft is None and none.apply(multiclass) is multiclass


def test_more_folds_and_a_weight_below_one_blend_the_hard_labels_in():
    db, task = _fixture()
    hard = task.train["y"].to_numpy()
    pure = teacher_labels(db, task, TYPES, set(), TeacherConfig(folds=4))
    assert pure.folds == 4 and len(np.unique(entity_folds(task.train["user_id"].to_numpy(), 4, 0))) == 4
    half = teacher_labels(db, task, TYPES, set(), TeacherConfig(folds=4, weight=0.5))
    np.testing.assert_allclose(half.soft, 0.5 * pure.soft + 0.5 * hard)
    assert half.score == pure.score  # the score is the teacher's own, before blending
    hard_only = teacher_labels(db, task, TYPES, set(), TeacherConfig(weight=0.0))
    np.testing.assert_array_equal(hard_only.soft, hard)
    with pytest.raises(ValueError, match="folds >= 2"):
        teacher_labels(db, task, TYPES, set(), TeacherConfig(folds=1))


def test_a_fold_fits_on_at_most_fit_rows_labels_and_still_labels_every_example():
    """Above ``fit_rows`` a fold's model is fitted on a seeded draw of its labels: every train
    label is still predicted, the draw is the same for the same seed, and a cap above the
    labels leaves the teacher as it was."""
    db, task = _fixture()
    whole = teacher_labels(db, task, TYPES, set())
    assert np.array_equal(teacher_labels(db, task, TYPES, set(), TeacherConfig(fit_rows=len(task.train))).soft, whole.soft)
    capped = teacher_labels(db, task, TYPES, set(), TeacherConfig(fit_rows=300))
    assert capped.soft.shape == whole.soft.shape and not np.array_equal(capped.soft, whole.soft)
    assert capped.score > 0.85  # 300 labels still teach the count
    np.testing.assert_array_equal(teacher_labels(db, task, TYPES, set(), TeacherConfig(fit_rows=300)).soft, capped.soft)
