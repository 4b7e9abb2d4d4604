"""Which KRR checkpoint is kept (``KRRConfig.select``).

``krr``: the checkpoint whose KRR surrogate scores best on the real validation split. The
surrogate is cheap, but it is not the model that will be trained on the graph, and its
score does not transfer: on Complete Journey at budget 0.05, refining a herding coreset
raised the surrogate's val AUROC from 0.67 to 0.74 while the GNN trained on the result fell
from 0.770 to 0.755. ``gnn``: the evaluation GNN (SAGE, ``ModelSpec()``, as ``evaluate.py``
trains it on any graph) is trained on a few checkpoints, the start, every ``gnn_every``
steps and the surrogate's best, and the one it scores best on real val is kept. With
``coreset_fallback`` it also judges the herding subgraph coreset in the kept graph's bytes
and keeps that instead when it scores higher: at large budgets real examples beat every
distilled graph T2G makes today (Complete Journey and Lahman at 0.05). The test split is
never read.
"""

from __future__ import annotations

import numpy as np
from relbench.base import Database

from t2g_lib.graph import SyntheticGraph
from t2g_lib.models import ModelSpec
from t2g_lib.task_data import TaskData
from t2g_lib.train import SampledSplit, make_sampler, train_distilled

SELECTIONS = ("krr", "gnn")


class GNNJudge:
    """Scores a synthetic graph by the real val score of the evaluation GNN trained on it."""

    def __init__(self, db: Database, features: dict[str, np.ndarray], task: TaskData, epochs: int, seed: int,
                 device="cpu", spec: ModelSpec = ModelSpec(), batch_size: int = 512) -> None:
        self.val = SampledSplit(make_sampler(db, spec.num_neighbors), features, task.val, task, batch_size)
        self.task_type, self.epochs, self.seed, self.device, self.spec = task.task_type, epochs, seed, device, spec

    def __call__(self, graph: SyntheticGraph) -> float:
        res = train_distilled("sage", graph, self.epochs, self.seed, self.device, self.task_type, self.spec,
                              val_split=self.val)
        return float(res.val_metric)


def gnn_checkpoints(steps: int, every: int) -> set[int]:
    """The steps the GNN judges besides the surrogate's best: the start, every ``every``-th
    and the last."""
    return {0, steps, *range(every, steps + 1, every)} if every > 0 else {0, steps}
