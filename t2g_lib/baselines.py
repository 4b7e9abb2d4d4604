"""The baselines T2G is compared with at its own byte budget.

``centroids``: the SBM graph with its blocks' centroids and mean labels, KRR's starting
point. ``random_subgraphs``, ``kcenter_subgraphs``, ``herding_subgraphs``: subgraph coresets
(``subgraph_coreset.py``) of real labelled examples chosen uniformly, by greedy k-center or
by herding on their entities' embeddings (``selectors.py``), each with its true temporal
neighbourhood. ``herding_histories``: herding over entities, each stored once as the history
its labels share, with every train label it has (``seed_views.py``). They replace the row coresets of earlier versions, whose children were
re-attached to other rows' parents and scored at chance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relbench.base import Database

from t2g_lib.graph import SyntheticGraph
from t2g_lib.krr import label_targets
from t2g_lib.krr_start import init_from_centroids
from t2g_lib.models import ModelSpec
from t2g_lib.pretrain import PretrainResult
from t2g_lib.selectors import select_herding, select_kcenter, select_random
from t2g_lib.subgraph_coreset import subgraph_coreset
from t2g_lib.task_data import TaskData
from t2g_lib.train import label_frame


def centroid_baseline(
    structure: SyntheticGraph,
    centroids: dict[str, np.ndarray],
    entity_clusters: np.ndarray,
    task: TaskData,
    num_classes: int | None = None,
    seed: int = 0,
) -> SyntheticGraph:
    """Cluster centroids without KRR: the SBM graph with x = its blocks' centroids and
    y = the mean train label of each target block (``entity_clusters`` = the entity
    table's pseudo-labels). It isolates what KRR adds over its own starting point."""
    train = label_frame(task.train)
    targets = label_targets(train, task.target_col, task.task_type, num_classes)
    blocks = np.asarray(entity_clusters, dtype=np.int64)[train[task.entity_col].to_numpy(dtype=np.int64)]
    return init_from_centroids(structure, centroids, (blocks, targets), seed, noise=0.0)


BASELINES = ("centroids", "random_subgraphs", "kcenter_subgraphs", "herding_subgraphs", "herding_histories")
SELECTORS = {"random_subgraphs": select_random, "kcenter_subgraphs": select_kcenter, "herding_subgraphs": select_herding}


@dataclass
class BaselineGraphs:
    """The graphs T2G is compared with at its own budget, and the seconds each took to build."""

    graphs: dict[str, SyntheticGraph]
    seconds: dict[str, float]

    def save(self, path: Path) -> Path:
        path = Path(path)
        names = list(self.graphs)
        for i, name in enumerate(names):
            self.graphs[name].save(path / f"graph_{i}")
        (path / "baselines.json").write_text(json.dumps({"names": names, "seconds": self.seconds}))
        return path

    @classmethod
    def load(cls, path: Path) -> "BaselineGraphs":
        path = Path(path)
        meta = json.loads((path / "baselines.json").read_text())
        graphs = {name: SyntheticGraph.load(path / f"graph_{i}") for i, name in enumerate(meta["names"])}
        return cls(graphs, meta["seconds"])


def build_baselines(
    db: Database,
    pretraining: PretrainResult,
    structure: SyntheticGraph,
    task: TaskData,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
    spec: ModelSpec = ModelSpec(),
    budget_bytes: int | None = None,
    names: tuple[str, ...] | list[str] = BASELINES,
) -> BaselineGraphs:
    """Every baseline at ``structure``'s budget: the centroid start of KRR (on the structure
    itself) and four coresets (three of examples, one of entity histories), sampled as the evaluation model (``spec``) samples,
    in ``budget_bytes`` (T2G's own bytes; default the structure's); ``names`` picks some."""
    def build(name: str) -> SyntheticGraph:
        if name == "centroids":
            return centroid_baseline(
                structure, pretraining.centroids, pretraining.pseudo_labels[task.entity_table], task, seed=seed
            )
        histories = name.endswith("_histories")  # the same selector, choosing entities with all their labels
        return subgraph_coreset(SELECTORS[name.replace("_histories", "_subgraphs")], db, pretraining.embeddings,
                                structure, task, seed, spec, budget=budget_bytes, histories=histories)

    graphs, seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        graphs[name] = build(name)
        seconds[name] = time.perf_counter() - start
        log(f"built {name} at the same budget in {seconds[name]:.1f}s")
    return BaselineGraphs(graphs, seconds)
