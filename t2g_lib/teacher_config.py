"""The teacher's knobs, in a module of their own: the Dagster definitions build their run
config from them at start-up, which must not import the GBM stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TeacherConfig:
    """How many entity folds the teacher is cross-fitted on (each fold's model sees
    ``1 - 1/folds`` of the entities), the teacher's share of each soft label, and how many
    labels a fold's model is fitted on at most: a GBM's fit grows faster than its rows
    (TPC-H SF1's 1.8M train labels: 117 s, slope 1.3), and every label is still predicted."""

    folds: int = 5
    weight: float = 1.0  # soft label = weight * teacher + (1 - weight) * hard label
    fit_rows: int | None = 500_000  # labels each fold's model is fitted on at most, drawn with the seed; None: all
    seed: int = 0
