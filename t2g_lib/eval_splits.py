"""What every evaluation of a task shares: its real val and test seeds, sampled once through
the temporal sampler, the leakage report over them, and how a trained model is scored.

Both the full-data reference (``full_training.py``) and the methods' evaluation
(``evaluate.py``) start here, so they score on the same subgraphs, by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from relbench.base import Database, TaskType

from t2g_lib.leakage import LeakageReport, check_split_leakage
from t2g_lib.metrics import MULTICLASS, task_kind, trivial_score
from t2g_lib.task_data import TaskData
from t2g_lib.temporal import TemporalSampler
from t2g_lib.train import SampledSplit, TrainResult, count_classes, label_frame, make_sampler


@dataclass
class EvalSplits:
    """The sampler, the val and test splits of a task, and what was learned sampling them."""

    sampler: TemporalSampler
    val: SampledSplit
    test: SampledSplit
    kind: TaskType
    leakage: LeakageReport
    trivial: float
    """The test score of predicting without features (the train prior / mean / majority)."""

    def scored(self, model_name: str, method: str, seed: int, res: TrainResult, nbytes: int,
               distill_seconds: float, device) -> dict:
        """One record: a trained model's test metrics and what it cost (models are not kept)."""
        return {
            "model": model_name, "method": method, "seed": seed,
            **self.test.score(res.model, device, self.kind),
            "val_value": res.val_metric, "storage_bytes": nbytes,
            "distill_seconds": distill_seconds, "train_seconds": res.seconds, "epochs_trained": res.epochs,
        }


def prepare_splits(
    db: Database,
    features: dict[str, np.ndarray],
    task: TaskData,
    batch_size: int = 512,
    num_neighbors=(8, 8),
    leak_check_rows: int = 2000,
) -> EvalSplits:
    """Sample val and test once, and check them and a probe of the train labels for leakage."""
    kind = task_kind(task.task_type)
    sampler = make_sampler(db, num_neighbors)
    train_df = label_frame(task.train)
    val, test = (SampledSplit(sampler, features, t, task, batch_size) for t in (task.val, task.test))
    probe = train_df.sample(n=min(len(train_df), leak_check_rows), random_state=0)
    probe_split = SampledSplit(sampler, features, probe, task, batch_size, with_target=False)
    report = check_split_leakage(db, task.entity_table, {"train": probe_split, "val": val, "test": test})
    trivial = trivial_score(kind, train_df[task.target_col].to_numpy(), test.y)
    return EvalSplits(sampler, val, test, kind, report, trivial)


def label_classes(task: TaskData) -> int:
    """Classes of a multiclass task (the largest train or val label + 1); 1 otherwise."""
    if task_kind(task.task_type) != MULTICLASS:
        return 1
    return count_classes(*(label_frame(t)[task.target_col].to_numpy() for t in (task.train, task.val)))
