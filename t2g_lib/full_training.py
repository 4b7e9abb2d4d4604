"""Stage ``full_training``: every evaluation model trained on the whole database.

It is the reference each distilled graph is measured against (utility retention, speedup,
compression), so it is a stage of its own: materialized once per partition, shown in the UI
and read by ``evaluation_scores``, rather than retrained inside every evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.eval_splits import EvalSplits, label_classes, prepare_splits
from t2g_lib.graph import GraphSchema, fkey_index
from t2g_lib.leakage import LeakageReport
from t2g_lib.metrics import MULTICLASS
from t2g_lib.models import ModelSpec
from t2g_lib.task_data import TaskData
from t2g_lib.train import label_frame, train_full

FULL = "full"
"""Method name of the reference: the same GNN trained on the whole database."""


@dataclass
class FullTraining:
    """One scored record per model x seed (test metrics, ``val_value``, ``train_seconds``),
    the leakage report of its samples and the full database's size in bytes.

    ``records`` is empty when leakage was found: then nothing was trained.
    """

    records: pd.DataFrame
    leakage: dict
    storage_bytes: int

    def record(self, model: str, seed: int) -> dict | None:
        """The record of ``model`` trained with ``seed``, if there is one."""
        if self.records.empty:
            return None
        hit = self.records[(self.records["model"] == model) & (self.records["seed"] == seed)]
        return hit.iloc[0].to_dict() if len(hit) else None


def full_nbytes(db: Database, features: dict[str, np.ndarray], task: TaskData) -> int:
    """The full database in ``SyntheticGraph.nbytes``'s accounting: every row's float32
    features, an int32 pair per child row and relation, float32 train labels."""
    schema = GraphSchema.from_database(db)
    total = sum(len(db.table_dict[t].df) * np.shape(features[t])[1] * 4 for t in schema.tables)
    total += sum(len(fkey_index(db, rel)) * 2 * 4 for rel in schema.relations)
    return int(total + len(label_frame(task.train)) * label_classes(task) * 4)


def train_full_models(
    db: Database,
    features: dict[str, np.ndarray],
    task: TaskData,
    models: list[str],
    seeds: Iterable[int] = (0,),
    *,
    epochs: int = 20,
    batch_size: int = 512,
    device="cpu",
    spec: ModelSpec = ModelSpec(),
    splits: EvalSplits | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> FullTraining:
    """Train each model with each seed on the real train split (early-stopped on real val)
    and score it on real test. Trains nothing when the sampled splits leak, and stops at the
    first training batch whose sampler reports a row later than its seed."""
    splits = splits or prepare_splits(db, features, task, batch_size, spec.num_neighbors)
    nbytes = full_nbytes(db, features, task)
    if not splits.leakage.passed:
        log(f"temporal leakage of up to {splits.leakage.max_leak_seconds} s: no model is trained")
        return FullTraining(pd.DataFrame(), splits.leakage._asdict(), nbytes)
    classes = label_classes(task)
    records = []
    for model_name in models:
        for seed in seeds:
            log(f"{model_name} seed {seed}: training on the full database ({len(label_frame(task.train))} labels)")
            res = train_full(
                model_name, db, features, task, epochs, batch_size, seed, device, spec,
                num_classes=classes if splits.kind == MULTICLASS else None,
                sampler=splits.sampler, val_split=splits.val, log=log,
            )
            if res.max_leak_seconds > 0:  # the sampler's own measure over every train batch
                log(f"temporal leakage of {res.max_leak_seconds} s in full-data training batches")
                leak = LeakageReport(False, res.max_leak_seconds, [
                    {"split": "train (full-data training batches)", "leak_seconds": res.max_leak_seconds}
                ])
                return FullTraining(pd.DataFrame(), leak._asdict(), nbytes)
            records.append(splits.scored(model_name, FULL, seed, res, nbytes, 0.0, device))
    return FullTraining(pd.DataFrame(records), splits.leakage._asdict(), nbytes)
