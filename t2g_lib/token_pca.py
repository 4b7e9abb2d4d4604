"""The frozen, information-preserving half of a row embedding: PCA of a table's flat tokens.

The clustering objective keeps only what separates clusters: on Lahman the trained row
encoder's 32 dimensions explain none of the variance of ``Appearances.G_all`` (ridge
R^2 ~ 0), the column that best predicts whether a player plays next season. So each row
embedding also carries the top principal components of the row's own standardized column
values (numericals, one-hot frequent categories, calendar fields, text vectors). Like the
encoder output, this is a function of the row's own columns only: no other row, no time.
"""

from __future__ import annotations

import numpy as np

TOP_CATEGORIES = 16  # one-hot width per categorical column (torch_frame orders by frequency)
CHUNK_ROWS = 65536


def flat_tokens(frame) -> np.ndarray:
    """A ``TensorFrame`` as one float matrix (rows, features), before standardization."""
    import torch
    import torch_frame

    parts = []
    for stype, feat in frame.feat_dict.items():
        if stype == torch_frame.categorical:
            # Index i is the i-th most frequent category; -1 (missing / unseen) is all zeros.
            parts.append((feat.unsqueeze(-1) == torch.arange(TOP_CATEGORIES)).flatten(1).float())
        else:
            values = feat if isinstance(feat, torch.Tensor) else feat.values  # MultiEmbeddingTensor
            parts.append(values.float().reshape(values.shape[0], -1))
    return torch.nan_to_num(torch.cat(parts, 1)).numpy()


def table_token_pca(frame, dims: int, seed: int, fit_rows: int = 20000, out: np.ndarray | None = None) -> np.ndarray:
    """(rows, ``dims``) float32: the table's top principal components, zero-padded, written
    into ``out`` if given (a view of a larger array's columns is fine).

    Columns are standardized, PCA is fitted on at most ``fit_rows`` sampled rows (memory
    stays bounded on large tables) and every row is projected in chunks. Components keep
    their relative variance; the whole block is scaled so the first has unit spread.
    """
    import torch
    from sklearn.decomposition import PCA

    n = int(frame.num_rows)
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(n, size=fit_rows, replace=False)) if n > fit_rows else np.arange(n)
    sample = flat_tokens(frame[torch.as_tensor(fit_idx)])
    mean, std = sample.mean(0), sample.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    k = min(dims, sample.shape[1], len(sample))
    if out is None:
        out = np.zeros((n, dims), dtype=np.float32)
    else:
        out[:] = 0.0
    if k == 0 or not np.ptp(sample, axis=0).any():
        return out  # a constant table carries no information
    pca = PCA(k, svd_solver="full", random_state=seed).fit((sample - mean) / std)
    scale = float(np.sqrt(pca.explained_variance_[0])) or 1.0
    for start in range(0, n, CHUNK_ROWS):
        rows = np.arange(start, min(start + CHUNK_ROWS, n))
        x = (flat_tokens(frame[torch.as_tensor(rows)]) - mean) / std
        out[rows, :k] = pca.transform(x) / scale
    return out
