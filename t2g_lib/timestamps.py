"""Timestamps as the method counts them: int64 seconds since the epoch.

Its own module so that the graph layer (``graph.py``) and the temporal sampler
(``temporal.py``, which builds on the graph layer) share it without importing each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_seconds(values: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps as int64 seconds since the epoch, whatever the datetime64 unit.

    ``astype("int64")`` on a pandas datetime column returns its *native* unit (ns, us or s
    depending on how the parquet file was written), so the unit is fixed first. NaT maps to
    the smallest int64 (``temporal.UNTIMED``).
    """
    ts = pd.to_datetime(pd.Series(values)).to_numpy()
    return ts.astype("datetime64[s]").astype(np.int64)
