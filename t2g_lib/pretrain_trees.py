"""Cluster-pretraining steps on sampled trees, for databases too large for a full-graph step.

A full-graph step keeps every row's activations of every GNN layer for the backward pass:
on TPC-H SF0.3 (2.6M rows) that added 8.6 GiB, and it grows with the rows. Above
``PretrainConfig.full_graph_rows`` rows, a step instead draws, for each table, ``tree_seeds``
random rows with their neighbourhood trees (``temporal.TemporalSampler`` without a time
limit: each row's parents and its most recent ``tree_neighbors`` children per relation, per
hop), encodes every sampled row with gradients, runs the same GNN over the trees and scores
the seeds against their pseudo-labels. A step's memory is bounded by the trees' size,
whatever the database's. Smaller databases keep the full-graph step, and their results.

The rounds' k-means label a fixed ``pool`` of at most ``PretrainConfig.round_rows`` rows per
table, drawn once, from their GNN outputs over the same kind of trees (``outputs``), and the
steps draw their seeds from it: a round costs the pool's trees, not a pass over every row
(on TPC-H SF1 each such pass took about 95 s). Only the final assignment passes over every row.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from relbench.base import Database
from torch import Tensor

from t2g_lib.temporal import NO_TIME_LIMIT, TemporalSampler


class TreeBatches:
    """Random seed rows of one table with their (untimed) neighbourhood trees, drawn from
    each table's ``pool`` of rows (the rows a round's k-means labelled)."""

    def __init__(self, db: Database, num_neighbors: list[int], seeds: int, seed: int,
                 pool: list[np.ndarray]) -> None:
        self.sampler = TemporalSampler(db, list(num_neighbors))
        self.seeds = seeds
        self.pool = pool
        self.rng = np.random.default_rng([seed, 11])

    def draw(self, index: int) -> np.ndarray:
        """Positions in table ``index``'s pool of a step's seeds, sorted."""
        n = len(self.pool[index])
        return np.sort(self.rng.choice(n, size=min(n, self.seeds), replace=False))

    def trees(self, index: int, rows: np.ndarray):
        """A ``HeteroData`` of the trees of rows ``rows`` of table ``index`` (``n_id``: the
        rows they hold; the seeds come first)."""
        return self.sampler.sample(self.sampler.schema.tables[index], rows, np.full(len(rows), NO_TIME_LIMIT))

    def outputs(self, trainer, index: int, rows: np.ndarray) -> Tensor:
        """The GNN's outputs for rows ``rows`` of table ``index`` over their trees: every
        sampled row encoded (with gradients when they are on), the GNN run over the trees."""
        sub = self.trees(index, rows)
        xs = []
        for j, nt in enumerate(trainer.gnn.node_types):
            ids = sub[nt].n_id.to(trainer.dev)
            xs.append(trainer.encoder(j, trainer.frames[j][ids]) if len(ids)
                      else torch.zeros((0, trainer.config.dim), device=trainer.dev))
        return trainer.gnn(xs, trainer.gnn.adjacency(sub, trainer.dev))[index][: len(rows)]


def tree_loss(trainer, batches: TreeBatches, labels: list[Tensor], weights: list[Tensor],
              trained: list[bool]) -> Tensor:
    """Mean over the trained tables of the class-balanced cross-entropy of their seeds'
    pseudo-labels (``labels[i]``: one per row of table i's pool), each table's seeds
    predicted over their own trees."""
    losses = []
    for i in range(len(trainer.tables)):
        if not trained[i]:
            continue
        pos = batches.draw(i)
        logits = trainer.heads[i](batches.outputs(trainer, i, batches.pool[i][pos]))
        losses.append(F.cross_entropy(logits, labels[i][torch.as_tensor(pos, device=trainer.dev)], weight=weights[i]))
    return torch.stack(losses).mean()
