"""Rows stored as float16 principal components: the codec, the graph's bytes and the model's
projection of real rows."""

from __future__ import annotations

import numpy as np
import torch

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.graph import SyntheticGraph
from t2g_lib.sbm import budget_for, generate_sbm
from t2g_lib.train import train_distilled
from tests.test_sbm import make_db

D = 4


def _features(db, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Rank-2 rows plus a little noise: two components keep nearly everything.
    return {t: (rng.normal(size=(len(tab.df), 2)) @ rng.normal(size=(2, D)) + 0.01 * rng.normal(size=(len(tab.df), D)))
            .astype(np.float32) for t, tab in db.table_dict.items()}


def test_codec_keeps_the_top_components_in_float16() -> None:
    db, _, _ = make_db()
    feats = _features(db)
    codec = FeatureCodec.fit(feats, 2)
    x = feats["orders"]
    coef = codec.encode("orders", x)
    assert coef.dtype == np.float16 and coef.shape == (len(x), 2)
    back = codec.round_trip("orders", x)
    assert np.abs(back - x).max() < 0.1 * np.abs(x).max()  # rank 2 + noise: little is lost
    np.testing.assert_allclose(codec.round_trip("orders", back), back, atol=1e-2)  # a projection
    p, shift = codec.projection("orders")
    np.testing.assert_allclose(x @ p + shift, codec.decode("orders", (x - codec.mean["orders"]) @ codec.basis["orders"].T),
                               atol=1e-5)
    assert codec.row_bytes("orders") == 4  # two float16 coefficients
    full = FeatureCodec.fit(feats, None, "float32")
    np.testing.assert_allclose(full.round_trip("orders", x), x, atol=1e-5)  # identity at full width
    assert full.nbytes() == 0 and full.row_bytes("orders") == 4 * D  # nothing stored beside the rows


def test_a_codec_buys_more_rows_at_equal_bytes_and_survives_save_and_load(tmp_path) -> None:
    db, labels, cent = make_db()
    cent = {t: np.pad(c, ((0, 0), (0, D - c.shape[1]))).astype(np.float32) for t, c in cent.items()}
    feats = _features(db)
    plain = generate_sbm(db, labels, cent, budget_for(db, "0.1"), "users", seed=0)
    codec = FeatureCodec.fit(feats, 1)
    small = generate_sbm(db, labels, cent, budget_for(db, "0.1", codec), "users", seed=0, codec=codec)
    assert sum(small.num_nodes().values()) > sum(plain.num_nodes().values())
    assert small.nbytes() <= 1.01 * plain.nbytes()  # the same budget, spent on more rows
    loaded = SyntheticGraph.load(small.save(tmp_path / "g"))
    assert loaded.codec is not None and loaded.nbytes() == small.nbytes()
    for t in small.x:
        np.testing.assert_allclose(loaded.x[t], small.x[t], atol=1e-6)
    assert np.load(tmp_path / "g" / "graph.npz")["x_0"].dtype == np.float16  # stored as coefficients


def test_a_model_trained_on_a_coded_graph_reads_real_rows_through_the_same_subspace() -> None:
    db, labels, cent = make_db()
    cent = {t: np.pad(c, ((0, 0), (0, D - c.shape[1]))).astype(np.float32) for t, c in cent.items()}
    codec = FeatureCodec.fit(_features(db), 1)
    graph = generate_sbm(db, labels, cent, budget_for(db, "0.1", codec), "users", seed=0, codec=codec)
    graph.y = (np.arange(len(graph.y)) % 2).astype(np.float32)
    model = train_distilled("sage", graph, DistilledRecipe(steps=2), seed=0).model.eval()
    data = graph.to_hetero()
    nt = graph.schema.node_type("users")
    rng = np.random.default_rng(1)
    x_real = {k: v + torch.as_tensor(rng.normal(size=tuple(v.shape)), dtype=torch.float32) for k, v in data.x_dict.items()}
    x_proj = {}
    for t in graph.schema.tables:
        k = graph.schema.node_type(t)
        p, shift = codec.projection(t)
        x_proj[k] = x_real[k] @ torch.as_tensor(p) + torch.as_tensor(shift)
    with torch.no_grad():
        a = model(x_real, data.edge_index_dict, nt)
        b = model(x_proj, data.edge_index_dict, nt)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # what lies off the subspace is not read
