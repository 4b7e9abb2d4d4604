"""Which real examples a coreset keeps: uniform, greedy k-center or herding picks over
their feature vectors, each returning positions in the order they were chosen."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Selector = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""(candidate features (n, d), k <= n, rng) -> k distinct candidate positions."""


def select_random(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform sample without replacement, in random order."""
    return rng.choice(len(x), size=k, replace=False)


def select_kcenter(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-center (farthest-point) from a random first center: covers feature space."""
    x = np.asarray(x, dtype=np.float64)
    chosen = [int(rng.integers(len(x)))]
    dist = ((x - x[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        dist[chosen[-1]] = -1.0
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, ((x - x[nxt]) ** 2).sum(1))
        dist[chosen] = -1.0
    return np.asarray(chosen, dtype=np.int64)


def select_herding(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Welling's herding toward the feature mean: the i-th pick makes the mean of the picks
    closest to the mean of all candidates (ties broken by a seeded shuffle)."""
    perm = rng.permutation(len(x))
    x = np.asarray(x, dtype=np.float64)[perm]
    mu = x.mean(0)
    total = np.zeros_like(mu)
    free = np.ones(len(x), dtype=bool)
    chosen: list[int] = []
    for t in range(1, k + 1):
        gap = ((t * mu - total)[None, :] - x) ** 2
        cost = np.where(free, gap.sum(1), np.inf)
        i = int(np.argmin(cost))
        chosen.append(i)
        free[i] = False
        total += x[i]
    return perm[np.asarray(chosen, dtype=np.int64)]


def take(
    select: Selector, x: np.ndarray, k: int, rng: np.random.Generator, max_candidates: int
) -> np.ndarray:
    """k positions into ``x``; all of them plus random repeats when k exceeds the candidates,
    and a seeded subsample of at most ``max_candidates`` bounds the greedy selectors' cost."""
    n = len(x)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.concatenate([np.arange(n), rng.choice(n, size=k - n, replace=True)]).astype(np.int64)
    pool = np.sort(rng.choice(n, size=max_candidates, replace=False)) if n > max_candidates else np.arange(n)
    return pool[select(x[pool], k, rng)]
