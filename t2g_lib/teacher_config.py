"""The teacher's knobs, in a module of their own: the Dagster definitions build their run
config from them at start-up, which must not import the GBM stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TeacherConfig:
    """How many entity folds the teacher is cross-fitted on (each fold's model sees
    ``1 - 1/folds`` of the entities) and the teacher's share of each soft label."""

    folds: int = 5
    weight: float = 1.0  # soft label = weight * teacher + (1 - weight) * hard label
    seed: int = 0
