"""Which KRR checkpoint is kept (``KRRConfig.select``).

``krr``: the checkpoint whose KRR surrogate scores best on the real validation split. The
surrogate is cheap, but it is not the model that will be trained on the graph, and its
score does not transfer: on Complete Journey at budget 0.05, refining a herding coreset
raised the surrogate's val AUROC from 0.67 to 0.74 while the GNN trained on the result fell
from 0.770 to 0.755. ``gnn``: the evaluation GNN (SAGE, ``ModelSpec()``, as ``evaluate.py``
trains it on any graph) is trained on a few checkpoints, the start (or, with a coreset to
weigh, step ``gnn_first``), every ``gnn_every`` steps and the surrogate's best, and the one
it scores best on real val is kept. With ``coreset_fallback`` it also judges the herding
subgraph coreset in the kept graph's bytes and keeps that instead when it scores higher:
at large budgets real examples beat every distilled graph T2G makes today (Complete
Journey and Lahman at 0.05). The test split is never read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from relbench.base import Database

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.graph import SyntheticGraph
from t2g_lib.memory import release_freed_memory
from t2g_lib.metrics import task_kind
from t2g_lib.models import ModelSpec
from t2g_lib.task_data import TaskData
from t2g_lib.train import SampledSplit, TrainResult, make_sampler, restore_distilled, train_distilled

SELECTIONS = ("krr", "gnn")
JUDGE_MODEL = "sage"
_FILE = "judge_model.pt"


@dataclass
class JudgedModel:
    """The judge's model trained on the kept graph. Evaluation trains the same model on the
    same stored graph (same digest, model, seed, recipe and spec) and would get the same
    weights, so it reuses these instead."""

    fingerprint: str
    seed: int
    recipe: DistilledRecipe
    spec: ModelSpec
    task_type: str
    result: TrainResult
    model_name: str = JUDGE_MODEL

    def key(self) -> tuple:
        return self.model_name, self.seed, self.recipe, self.spec, self.fingerprint

    def save(self, folder: Path) -> None:
        r = self.result
        meta = {"fingerprint": self.fingerprint, "seed": self.seed, "recipe": dataclasses.asdict(self.recipe), "task_type": task_kind(self.task_type).value,
                "model_name": self.model_name, "spec": dataclasses.asdict(self.spec), "seconds": r.seconds,
                "val_metric": r.val_metric, "metric_name": r.metric_name, "epochs_trained": r.epochs,
                "val_seconds": r.val_seconds}
        torch.save({"meta": meta, "state": r.model.state_dict()}, Path(folder) / _FILE)

    @classmethod
    def load(cls, folder: Path, graph: SyntheticGraph) -> "JudgedModel | None":
        """The model saved in ``folder`` for ``graph``; None when there is none, or when it was
        saved before judges trained by a recipe (it is then trained again, not reused)."""
        path = Path(folder) / _FILE
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta = saved["meta"]
        if "recipe" not in meta:
            return None
        spec = ModelSpec(**{**meta["spec"], "num_neighbors": tuple(meta["spec"]["num_neighbors"])})
        model = restore_distilled(meta["model_name"], graph, meta["task_type"], spec, saved["state"])
        result = TrainResult(model, meta["seconds"], meta["val_metric"], meta["metric_name"], meta["epochs_trained"],
                             val_seconds=meta["val_seconds"])
        return cls(meta["fingerprint"], meta["seed"], DistilledRecipe(**meta["recipe"]), spec, meta["task_type"],
                   result, meta["model_name"])


class GNNJudge:
    """Scores a synthetic graph by the real val score of the evaluation GNN trained on it."""

    def __init__(self, db: Database, features: dict[str, np.ndarray], task: TaskData, recipe: DistilledRecipe,
                 seed: int, device="cpu", spec: ModelSpec = ModelSpec(), batch_size: int = 512) -> None:
        self.val = SampledSplit(make_sampler(db, spec.num_neighbors), features, task.val, task, batch_size)
        self.task_type, self.recipe, self.seed, self.device, self.spec = task.task_type, recipe, seed, device, spec
        self.trained: dict[str, TrainResult] = {}  # per graph digest

    def __call__(self, graph: SyntheticGraph) -> float:
        res = train_distilled(JUDGE_MODEL, graph, self.recipe, self.seed, self.device, self.task_type, self.spec,
                              val_split=self.val)
        self.trained[graph.fingerprint()] = res
        release_freed_memory()  # the training's activations, which the allocator would keep
        return float(res.val_metric)

    def model_for(self, graph: SyntheticGraph) -> JudgedModel | None:
        """The model this judge trained on ``graph``, if it trained one."""
        digest = graph.fingerprint()
        res = self.trained.get(digest)
        return None if res is None else JudgedModel(digest, self.seed, self.recipe, self.spec, self.task_type, res)


def gnn_checkpoints(steps: int, every: int, first: int = 0) -> set[int]:
    """The steps the GNN judges besides the surrogate's best: the ``first`` (the start by
    default), every ``every``-th and the last."""
    return {min(first, steps), steps, *(range(every, steps + 1, every) if every > 0 else ())}
