"""The space KRR regresses labels in: logits for classes, standardised values for regression.

Synthetic labels are learned as logits (binary: one, multiclass: one per class) or as
standardised targets, so a closed-form ridge solve can move them freely; they are mapped
back to probabilities or target units when the distilled graph is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from relbench.base import TaskType

from t2g_lib.metrics import BINARY, REGRESSION

#: Probabilities are clipped to [eps, 1 - eps] before their logits are taken.
PROB_EPS = 1e-3


@dataclass
class LabelSpace:
    """Maps labels of one task to KRR's parameter space and back."""

    kind: TaskType
    mean: float = 0.0
    std: float = 1.0
    low: float = -np.inf
    high: float = np.inf

    @classmethod
    def fit(cls, kind: TaskType, targets: np.ndarray) -> "LabelSpace":
        """Regression targets are standardised by their own mean and std (1 when constant)
        and bounded to their range."""
        if kind != REGRESSION:
            return cls(kind)
        std = float(targets.std())
        return cls(kind, float(targets.mean()), std if std > 0 else 1.0, float(targets.min()), float(targets.max()))

    def bound_(self, param: torch.Tensor) -> None:
        """Keep regression parameters inside the train targets' range, in place: a synthetic
        label no real example had (at 981x they drifted to 3x the range) teaches nothing real."""
        if self.kind == REGRESSION:
            with torch.no_grad():
                param.clamp_((self.low - self.mean) / self.std, (self.high - self.mean) / self.std)

    def standardise(self, y: np.ndarray) -> np.ndarray:
        """Real targets as KRR sees them (regression: standardised; classes unchanged)."""
        return (y - self.mean) / self.std if self.kind == REGRESSION else y

    def to_target_units(self, pred: np.ndarray) -> np.ndarray:
        """KRR predictions back in the units the task's metric compares."""
        return pred * self.std + self.mean if self.kind == REGRESSION else pred

    def to_param(self, y: np.ndarray) -> np.ndarray:
        """Synthetic labels (probabilities or target values) as logits or standardised values."""
        if self.kind == REGRESSION:
            return (y - self.mean) / self.std
        p = np.clip(y, PROB_EPS, 1 - PROB_EPS)
        return np.log(p / (1 - p)) if self.kind == BINARY else np.log(p)

    def from_param(self, y: torch.Tensor) -> np.ndarray:
        """Learned parameters back as probabilities, class probabilities or target values."""
        if self.kind == REGRESSION:
            return (y * self.std + self.mean).clamp(self.low, self.high).cpu().numpy()
        if self.kind == BINARY:
            return torch.sigmoid(y).cpu().numpy()
        return torch.softmax(y, dim=1).cpu().numpy()
