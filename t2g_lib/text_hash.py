"""The cheap text encoder for columns with more distinct strings than the sentence model's budget.

all-MiniLM-L6-v2 embeds about 200 strings a second on a 2-core CPU: a column of a million
distinct comments would take more than an hour. Beyond ``TEXT_MODEL_BUDGET`` distinct
strings a column is instead encoded by hashing its words and word pairs
(scikit-learn's ``HashingVectorizer``, stateless) and projecting the hashed counts with one
fixed Gaussian matrix (seeded) to ``HASH_DIM`` dimensions, L2-normalised. A random
projection keeps cosine similarities (Johnson-Lindenstrauss), needs no fit, so new rows
encode exactly as the old ones did, and it streams: it costs a few microseconds a string
and memory linear in the strings of one chunk per CPU (the hashing runs on every CPU).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

TEXT_MODEL_BUDGET = 20_000
"""Distinct strings per column the sentence model embeds; beyond this a column is hashed."""
SENTENCE_MODEL = "sentence model"
HASHING = "hashing"
HASH_DIM = 64
_N_FEATURES = 2**16
_CHUNK = 50_000


def hash_workers() -> int:
    """Processes that hash text: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def text_encoder(n_distinct: int, budget: int = TEXT_MODEL_BUDGET) -> str:
    """Which encoder a text column with ``n_distinct`` distinct strings gets."""
    return SENTENCE_MODEL if n_distinct <= budget else HASHING


class HashedTextEmbedder:
    """Words and word pairs, hashed and randomly projected to ``dim`` (L2-normalised).

    Callable on ``list[str]`` -> ``torch.Tensor`` (len, dim), like ``CachedTextEmbedder``,
    so torch_frame's ``TextEmbedderConfig`` takes either. Each distinct string is encoded once.
    """

    def __init__(self, dim: int = HASH_DIM, seed: int = 0) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim = dim
        self._hasher = HashingVectorizer(n_features=_N_FEATURES, ngram_range=(1, 2), alternate_sign=False,
                                         norm="l2", dtype=np.float32)
        rng = np.random.default_rng([seed, dim])
        self._projection = (rng.standard_normal((_N_FEATURES, dim)) / np.sqrt(dim)).astype(np.float32)

    def encode_unique(self, texts: np.ndarray) -> np.ndarray:
        """(len(texts), dim) float32 vectors of distinct strings, in chunks. The hashing (pure
        Python, most of the cost) runs in one worker process per CPU when there are several
        chunks; each chunk's counts are projected here, in order, so the vectors are the same."""
        from joblib import Parallel, delayed
        from joblib.externals.loky import get_reusable_executor

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(texts), _CHUNK)
        workers = min(len(starts), hash_workers())
        counts = (Parallel(n_jobs=workers, return_as="generator")(delayed(self._hasher.transform)(texts[i : i + _CHUNK])
                                                                  for i in starts)
                  if workers > 1 else (self._hasher.transform(texts[i : i + _CHUNK]) for i in starts))
        try:
            for i, hashed in zip(starts, counts):
                x = np.asarray(hashed @ self._projection)
                norm = np.linalg.norm(x, axis=1, keepdims=True)
                out[i : i + _CHUNK] = x / np.maximum(norm, 1e-12)
        finally:
            if workers > 1:  # joblib keeps its workers for minutes; they would hold memory through later stages
                get_reusable_executor().shutdown(wait=True)
        return out

    def __call__(self, texts: list[str]):
        import pandas as pd
        import torch

        codes, uniques = pd.factorize(pd.Series([str(t) for t in texts], dtype=object))
        if len(uniques) == 0:
            return torch.zeros((len(texts), self.dim), dtype=torch.float32)
        return torch.from_numpy(self.encode_unique(np.asarray(uniques, dtype=object))[codes])


@lru_cache(maxsize=4)
def hashed_text_embedder(dim: int = HASH_DIM, seed: int = 0) -> HashedTextEmbedder:
    """One shared encoder per (dim, seed): its projection matrix is built once per process."""
    return HashedTextEmbedder(dim, seed)
