"""Kernels K(A, B) for the KRR distillation step, in torch (differentiable in A and B).

The KRR probe in DESIGN.md found that the kernel must match the model family trained on the
distilled data: the NTK / NNGP of a ReLU network beat centroids where an RBF kernel did not.
So ``ntk`` and ``nngp`` (infinite-width fully-connected ReLU network, depth L) are the
defaults; ``linear`` and ``rbf`` are kept as simple references.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_EPS = 1e-6


def linear(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plain inner products."""
    return a @ b.T


def rbf(a: torch.Tensor, b: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
    """``exp(-gamma ||a - b||^2)``; default ``gamma = 1 / (dim * var(b))`` (sklearn's 'scale').

    The default is taken from ``b``, the support set, so ``K(Z, Z')`` and ``K(Z', Z')`` of
    one KRR fit share one gamma; it is detached so it does not become a training signal.
    """
    if gamma is None:
        var = b.detach().var().clamp(min=_EPS)
        gamma = 1.0 / (b.shape[1] * float(var))
    sq = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1).unsqueeze(0)
    return torch.exp(-gamma * sq.clamp(min=0))


def _arccos_layers(
    a: torch.Tensor, b: torch.Tensor, depth: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(NNGP, NTK) of a depth-``depth`` ReLU network with He scaling (c_sigma = 2).

    Inputs are L2-normalised (Arora et al. 2019), so every layer's covariance has unit
    diagonal and each step is the arc-cosine map of the previous correlation rho:
    ``Sigma <- (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi``,
    ``dSigma = (pi - arccos rho) / pi``, ``Theta <- Theta * dSigma + Sigma``.
    """
    a = a / a.norm(dim=1, keepdim=True).clamp(min=_EPS)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=_EPS)
    sigma = a @ b.T
    theta = sigma
    for _ in range(depth):
        rho = sigma.clamp(-1 + _EPS, 1 - _EPS)  # arccos' is infinite at +-1
        angle = torch.arccos(rho)
        dot_sigma = (math.pi - angle) / math.pi
        sigma = (torch.sqrt(1 - rho * rho) + (math.pi - angle) * rho) / math.pi
        theta = theta * dot_sigma + sigma
    return sigma, theta


def nngp(a: torch.Tensor, b: torch.Tensor, depth: int = 2) -> torch.Tensor:
    """NNGP kernel (output covariance at init) of a ReLU MLP with ``depth`` hidden layers."""
    return _arccos_layers(a, b, depth)[0]


def ntk(a: torch.Tensor, b: torch.Tensor, depth: int = 2) -> torch.Tensor:
    """Neural tangent kernel of a fully-connected ReLU net with ``depth`` hidden layers."""
    return _arccos_layers(a, b, depth)[1]


KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "linear": linear,
    "rbf": rbf,
    "ntk": ntk,
    "nngp": nngp,
}


def get_kernel(name: str, **params: float | int) -> Kernel:
    """The kernel ``name`` with its parameters bound (``gamma`` for rbf, ``depth`` for ntk/nngp)."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
    return partial(KERNELS[name], **params)
