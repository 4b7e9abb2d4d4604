"""Full-data scores, shared by every budget of a task.

Training on the full database does not depend on the distillation budget, yet each
``task@budget`` partition needs it as the reference. Its scored record is stored under a
key that covers everything the result depends on (the pretraining run, the label tables,
the training settings), so a second budget reuses it and anything that changes it misses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def labels_digest(*tables: pd.DataFrame) -> str:
    """Content hash of label tables (row order and values)."""
    h = hashlib.sha256()
    for df in tables:
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        h.update(json.dumps(list(map(str, df.columns))).encode())
    return h.hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """Content hash of named arrays (the row features a full-data model trains on)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def cache_key(**parts: Any) -> str:
    """A short stable key of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FullRunCache:
    """One JSON record per (model, seed) in ``folder/<key>/``."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder) / key

    def _file(self, model: str, seed: int) -> Path:
        return self.folder / f"{model}_seed{int(seed)}.json"

    def get(self, model: str, seed: int) -> dict | None:
        path = self._file(model, seed)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, model: str, seed: int, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._file(model, seed).with_suffix(".tmp")
        tmp.write_text(json.dumps(record, default=float))
        tmp.replace(self._file(model, seed))
