"""The token PCA half of row embeddings: shape, determinism, what it keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

pytest.importorskip("torch_frame")

from t2g_lib.token_pca import TOP_CATEGORIES, flat_tokens, table_token_pca  # noqa: E402
from t2g_lib.tokens import tokenize_database  # noqa: E402


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "kind": rng.choice(["a", "b", "c"], n),
            "note": rng.choice(["left-handed pitcher", "catcher", "designated hitter"], n),
            "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        }
    )
    db = Database({"t": Table(df, {}, "id", "when")})
    types = {"t": {"id": "key", "x": "numerical", "y": "numerical", "kind": "categorical", "note": "text", "when": "timestamp"}}
    tokens = tokenize_database(db, types, tmp_path_factory.mktemp("cache"))
    return df, tokens["t"].frame


def test_flat_tokens_one_hot_frequent_categories(frame) -> None:
    df, tf = frame
    flat = flat_tokens(tf)
    assert flat.shape[0] == len(df)
    assert flat.shape[1] >= 2 + TOP_CATEGORIES + 384  # numericals, one-hot block, text vector, calendar
    assert np.isfinite(flat).all()


def test_pca_is_padded_deterministic_and_keeps_values(frame) -> None:
    from sklearn.linear_model import LinearRegression

    df, tf = frame
    wide = table_token_pca(tf, 64, seed=3, fit_rows=10)
    assert wide.shape == (len(df), 64) and wide.dtype == np.float32
    assert np.abs(wide[:, 10:]).max() == 0.0  # a 10-row fit has 10 components: the rest is zero padding
    assert table_token_pca(tf, 8, seed=3).tobytes() == table_token_pca(tf, 8, seed=3).tobytes()
    full = table_token_pca(tf, 64, seed=3)
    for col in ("x", "y"):
        assert LinearRegression().fit(full, df[col]).score(full, df[col]) > 0.99


def test_sampled_fit_projects_every_row(frame) -> None:
    df, tf = frame
    out = table_token_pca(tf, 4, seed=0, fit_rows=50)
    assert out.shape == (len(df), 4) and np.abs(out).sum(1).min() > 0
