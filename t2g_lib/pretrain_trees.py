"""Cluster-pretraining steps on sampled trees, for databases too large for a full-graph step.

A full-graph step keeps every row's activations of every GNN layer for the backward pass:
on TPC-H SF0.3 (2.6M rows) that added 8.6 GiB, and it grows with the rows. Above
``PretrainConfig.full_graph_rows`` rows, a step instead draws, for each table, ``tree_seeds``
random rows with their neighbourhood trees (``temporal.TemporalSampler`` without a time
limit: each row's parents and its most recent ``tree_neighbors`` children per relation, per
hop), encodes every sampled row with gradients, runs the same GNN over the trees and scores
the seeds against their pseudo-labels. A step's memory is bounded by the trees' size,
whatever the database's. Smaller databases keep the full-graph step, and their results.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from relbench.base import Database
from torch import Tensor

from t2g_lib.temporal import NO_TIME_LIMIT, TemporalSampler


class TreeBatches:
    """Random seed rows of one table with their (untimed) neighbourhood trees."""

    def __init__(self, db: Database, num_neighbors: list[int], seeds: int, seed: int) -> None:
        self.sampler = TemporalSampler(db, list(num_neighbors))
        self.seeds = seeds
        self.rng = np.random.default_rng([seed, 11])

    def draw(self, table: str):
        """A ``HeteroData`` of trees (``n_id``: the rows they hold; the seeds come first)
        and the seed rows."""
        n = self.sampler.num_rows[table]
        rows = np.sort(self.rng.choice(n, size=min(n, self.seeds), replace=False))
        return self.sampler.sample(table, rows, np.full(len(rows), NO_TIME_LIMIT)), rows


def tree_loss(trainer, batches: TreeBatches, labels: list[Tensor], weights: list[Tensor],
              trained: list[bool]) -> Tensor:
    """Mean over the trained tables of the class-balanced cross-entropy of their seeds'
    pseudo-labels, each table's seeds predicted over their own trees."""
    losses = []
    for i, table in enumerate(trainer.tables):
        if not trained[i]:
            continue
        sub, rows = batches.draw(table)
        xs = []
        for j, nt in enumerate(trainer.gnn.node_types):
            ids = sub[nt].n_id.to(trainer.dev)
            xs.append(trainer.encoder(j, trainer.frames[j][ids]) if len(ids)
                      else torch.zeros((0, trainer.config.dim), device=trainer.dev))
        hs = trainer.gnn(xs, trainer.gnn.adjacency(sub, trainer.dev))
        logits = trainer.heads[i](hs[i][: len(rows)])
        target = labels[i][torch.as_tensor(rows, device=trainer.dev)]
        losses.append(F.cross_entropy(logits, target, weight=weights[i]))
    return torch.stack(losses).mean()
