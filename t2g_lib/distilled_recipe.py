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
    (``layer_trim.batch_inputs``); None: every step reads every example (full batch).
    Counting steps, not epochs, keeps a model's updates the same whichever way it reads the
    examples: on Lahman player-retention at 0.01 (6,700 examples) 140 steps of 512 are about
    10 passes and cost a sixth of 100 full-batch steps (``benchmarks/distilled_training.py``).
    280 steps (ladder rung 20) cost twice that and help most where the target is a value
    (Lahman player-games, SAGE, seeds 0-2: MAE 24.93 -> 24.33), where a binary target had
    mostly peaked by 140.

    ``han_batch_size``: HAN's batches (None: ``batch_size``). HAN reads every row within its
    seeds' reach with every layer and averages its semantic attention over all of them, and
    learns better from smaller batches: on Lahman at 0.01, 256 against 512 scored
    player-retention AUROC 0.760 against 0.749 (140 steps, seeds 0-2) and player-games MAE
    25.65 against 26.45 (280 steps, seeds 0-1), where SAGE lost 0.008 AUROC.

    With ``patience``, ``steps`` is a ceiling and training stops once real val has not
    improved for that many scorings, as full-data training's early stopping does (off by
    default: on player-games it stopped HAN at a plateau that 280 fixed steps got past).
    """

    steps: int = 280
    batch_size: int | None = 512
    eval_every: int = 10  # steps between two scorings of real val (and at the last step)
    patience: int | None = None  # stop after this many scorings of val without a better one; None: run every step
    han_batch_size: int | None = 256  # HAN's examples per step; None: batch_size

    def __post_init__(self) -> None:
        if self.steps < 1 or self.eval_every < 1:
            raise ValueError(f"a recipe needs steps >= 1 and eval_every >= 1, got {self}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None (every step) or >= 1, got {self.patience}")
        for size in (self.batch_size, self.han_batch_size):
            if size is not None and size < 1:
                raise ValueError(f"batch_size must be None (full batch) or >= 1, got {size}")

    def batch_size_for(self, model_name: str) -> int | None:
        """Examples per step for ``model_name`` (None: every example)."""
        if model_name == "han" and self.han_batch_size is not None:
            return self.han_batch_size
        return self.batch_size
