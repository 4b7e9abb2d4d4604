"""How a GNN is trained on a distilled graph, in a module of its own: the Dagster definitions
build run config and settings from it at start-up, which must not import torch.

The GNN judge (``krr_select``) and the evaluation (``evaluate``) train with one recipe each;
when the two are equal, evaluation reuses the judge's model of the kept graph instead of
training it again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DistilledRecipe:
    """Optimizer steps, the examples each step reads, and how often real val is scored.

    ``batch_size``: each step reads one batch of that many labelled examples (a seeded
    partition, its order reshuffled every pass), cut to what its seeds read
    (``layer_trim.batch_inputs``); None: every step reads every example (full batch). Counting steps, not epochs, keeps a model's updates the same whichever way
    it reads the examples: on Lahman player-retention at 0.01 (6,700 examples) 140 steps of 512
    are about 10 passes and cost a sixth of 100 full-batch steps
    (``benchmarks/distilled_training.py``). 280 steps (ladder rung 20) cost twice that and
    help most where the target is a value: Lahman player-games MAE 24.86 -> 24.24 and
    25.15 -> 24.45 (SAGE, seeds 0-1), where a binary target had mostly peaked by 140. With ``patience``, ``steps`` is a ceiling and
    training stops once real val has not improved for that many scorings, as full-data
    training's early stopping does: a regression target keeps improving long after a
    binary one has peaked.
    """

    steps: int = 280
    batch_size: int | None = 512
    eval_every: int = 10  # steps between two scorings of real val (and at the last step)
    patience: int | None = None  # stop after this many scorings of val without a better one; None: run every step

    def __post_init__(self) -> None:
        if self.steps < 1 or self.eval_every < 1:
            raise ValueError(f"a recipe needs steps >= 1 and eval_every >= 1, got {self}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None (every step) or >= 1, got {self.patience}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be None (full batch) or >= 1, got {self.batch_size}")
