"""Per-table pseudo-labels of cluster pretraining: balanced k-means on whitened GNN outputs.

No cluster is ever empty or above ``max_cluster_share`` of its table's rows (a collapsed
pseudo-labelling teaches the encoder nothing). Large tables pass ``chunk``: their outputs stay
float32 and every distance and projection is computed a chunk of rows at a time, so memory
holds the table's outputs, its whitened rows and one (rows, k) distance matrix in float32.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from t2g_lib.pretrain import PretrainConfig

HEAD_TEMPERATURE = 5.0  # logit scale of a head initialised at its clustering
ASSIGN_CHUNK = 65536  # rows argsorted at once by the capacity-limited assignment


def sq_dists(x: np.ndarray, c: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Squared euclidean distances of every row of ``x`` to every row of ``c``, ``chunk`` rows
    at a time (None: all at once), so no temporary is larger than a chunk's."""
    step = chunk or max(len(x), 1)
    out = np.empty((len(x), len(c)), dtype=np.result_type(x, c))
    cc = (c * c).sum(1)[None, :]
    for i in range(0, len(x), step):
        xi = x[i : i + step]
        out[i : i + step] = (xi * xi).sum(1)[:, None] - 2.0 * xi @ c.T + cc
    return out


def cluster_sums(labels: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """(k, D) float64 sums of the rows of ``x`` in each cluster: ``np.add.at``'s result (same
    order, same precision) a column at a time through ``np.bincount``, which on TPC-H SF1 was
    a fifth of pretraining's time as ``np.add.at``."""
    out = np.empty((k, x.shape[1]))
    for j in range(x.shape[1]):
        out[:, j] = np.bincount(labels, weights=x[:, j], minlength=k)
    return out


def capacity_assign(d: np.ndarray, cap: int) -> np.ndarray:
    """Nearest-centroid assignment where a cluster takes at most ``cap`` rows.

    Rows propose to their nearest non-full centroid; each centroid keeps its closest
    proposers up to capacity and the rest move on. Every round fills at least one cluster,
    so this ends within k rounds; ``cap * k >= n`` guarantees every row is placed.
    """
    n, k = d.shape
    # Each row's centroids by distance, argsorted a chunk of rows at a time into the smallest
    # integer type that holds k: n x k int64 ranks were the largest array of an assignment.
    order = np.empty((n, k), dtype=np.min_scalar_type(max(k - 1, 0)))
    for i in range(0, n, ASSIGN_CHUNK):
        order[i : i + ASSIGN_CHUNK] = np.argsort(d[i : i + ASSIGN_CHUNK], axis=1, kind="stable")
    rank = np.zeros(n, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    full = np.zeros(k, dtype=bool)
    pending = np.arange(n)
    while pending.size:
        choice = order[pending, rank[pending]]
        while full[choice].any():
            rank[pending[full[choice]]] += 1
            choice = order[pending, rank[pending]]
        idx = np.lexsort((d[pending, choice], choice))
        rows, choice = pending[idx], choice[idx]
        starts = np.flatnonzero(np.r_[True, choice[1:] != choice[:-1]])
        pos = np.arange(len(choice)) - np.repeat(starts, np.diff(np.r_[starts, len(choice)]))
        ok = pos < cap - counts[choice]
        labels[rows[ok]] = choice[ok]
        counts += np.bincount(choice[ok], minlength=k)
        full = counts >= cap
        pending = rows[~ok]
        rank[pending] += 1
    return labels


def balanced_kmeans(
    x: np.ndarray,
    k: int,
    max_share: float,
    seed: int,
    sample: int,
    n_init: int,
    init_labels: np.ndarray | None = None,
    chunk: int | None = None,
    init_rows: np.ndarray | None = None,
) -> np.ndarray:
    """k-means labels of every row of ``x`` with no empty cluster and none above ``max_share``.

    ``init_labels`` (the previous round's assignment of every row, or of rows ``init_rows``)
    warm-starts k-means from those clusters' means in the current space, so rounds refine
    one partition instead of jumping between local optima. The share bound is ``max(max_share, ceil(n/k)/n)``:
    with k=2 and odd n a perfect half is impossible. Runs single-threaded so a seed fixes
    the result bit for bit. ``chunk`` bounds the distance computations' temporaries.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    n = len(x)
    if k <= 1 or n <= k or not np.ptp(x, axis=0).any():
        # Nothing to cluster (or all rows identical): an arbitrary balanced split.
        return np.arange(n, dtype=np.int64) % max(k, 1)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    cap = max(int(math.floor(max_share * n)), int(math.ceil(n / k)))
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicate rows: handled below
        if init_labels is not None:
            counts = np.bincount(init_labels, minlength=k)
            labelled = x if init_rows is None else x[init_rows]
            init = cluster_sums(init_labels, labelled, k) / np.maximum(counts, 1)[:, None]
            empty = np.flatnonzero(counts == 0)  # clusters the warm start lost: random rows
            init[empty] = x[rng.choice(n, size=len(empty), replace=False)]
            km = KMeans(k, init=init, n_init=1, random_state=seed)
        else:
            km = KMeans(k, n_init=n_init, random_state=seed)
        c = km.fit(x[fit_rows]).cluster_centers_
        for _ in range(k):
            d = None  # the last pass's distances go before the next pass's are allocated
            d = sq_dists(x, c, chunk)
            labels = d.argmin(1)
            counts = np.bincount(labels, minlength=k)
            big = int(counts.argmax())
            if counts.min() == 0:  # re-seed an empty cluster at the largest one's farthest row
                members = np.flatnonzero(labels == big)
                c[int(counts.argmin())] = x[members[d[members, big].argmax()]]
            elif counts[big] > cap:  # split: 2-means on the big cluster, smallest gives way
                members = np.flatnonzero(labels == big)
                halves = KMeans(2, n_init=1, random_state=seed).fit(x[members]).cluster_centers_
                if np.allclose(halves[0], halves[1]):
                    break  # identical rows: only the capacity limit can split them
                c[big], c[int(counts.argmin())] = halves
            else:
                break
        else:  # every pass moved a centroid: distances to the final ones
            d = None
            d = sq_dists(x, c, chunk)
        # A break leaves ``c`` as ``d`` measured it: the capacity-limited assignment reads
        # that pass's distances instead of computing and holding a second copy.
        return capacity_assign(d, cap)


def whitening(x: np.ndarray, dims: int, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA whitening to at most ``dims`` components: ``z = (x - mean) @ proj``.

    k-means then sees every principal direction with unit variance (as in DeepCluster);
    without it k-means follows the highest-variance directions (often one column's own
    noise or time), not the multi-modal structure the GNN brings in from related rows.
    """
    from threadpoolctl import threadpool_limits

    mean = x.mean(0, dtype=np.float64)
    # Evenly spaced rows: deterministic, and spanning tables stored in time order.
    fit = x[np.unique(np.linspace(0, len(x) - 1, min(len(x), max_rows)).astype(np.int64))] - mean
    with threadpool_limits(1):
        _, sv, vt = np.linalg.svd(fit, full_matrices=False)
    keep = sv > sv[0] * 1e-4 if sv.size and sv[0] > 0 else np.zeros(sv.size, bool)
    keep[dims:] = False
    return mean, vt[keep].T / sv[keep] * math.sqrt(len(fit))


def unit_whitened(h: np.ndarray, mean: np.ndarray, proj: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Rows of ``(h - mean) @ proj`` scaled to unit length, ``chunk`` rows at a time, stored in
    ``h``'s precision (float32 outputs stay float32, computed in float64)."""
    step = chunk or max(len(h), 1)
    out = np.empty((len(h), proj.shape[1]), dtype=np.result_type(h.dtype, np.float32))
    for i in range(0, len(h), step):
        z = (h[i : i + step] - mean) @ proj
        out[i : i + step] = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return out


def cluster_table(
    h: np.ndarray,
    k: int,
    config: "PretrainConfig",
    seed: int,
    init_labels: np.ndarray | None,
    chunk: int | None = None,
    init_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced k-means of one table on whitened, L2-normalized GNN outputs.

    Also returns the nearest-centroid classifier of that clustering written as a linear
    head on ``h`` (weight (k, hidden), bias (k,)): heads restart every round because
    cluster ids are arbitrary, and starting them at the clustering instead of at random
    makes the first steps train the encoder towards compact clusters, not fight a random head.
    With ``chunk`` (a large table, ``h`` float32) no temporary holds more than a chunk of rows
    in float64.
    """
    n, hidden = h.shape
    if k <= 1 or n <= k:
        return balanced_kmeans(h, k, config.max_cluster_share, seed, 1, 1), np.zeros((k, hidden)), np.zeros(k)
    mean, proj = whitening(h, config.dims_for(k), config.kmeans_sample)
    zn = unit_whitened(h, mean, proj, chunk)
    labels = balanced_kmeans(
        zn, k, config.max_cluster_share, seed, config.kmeans_sample, config.kmeans_n_init, init_labels, chunk, init_rows
    )
    dims = proj.shape[1]
    mu = cluster_sums(labels, zn, k)
    mu /= np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    scale = HEAD_TEMPERATURE / math.sqrt(max(dims, 1))  # |z| ~ sqrt(dims)
    weight = scale * (proj @ mu.T).T
    bias = -scale * (mean @ proj @ mu.T)
    return labels, weight, bias
