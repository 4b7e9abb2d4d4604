"""Cluster pretraining on a small synthetic database with planted groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from t2g_lib.pretrain import PretrainConfig, PretrainResult, pretrain_clusters  # noqa: E402
from t2g_lib.pseudo_labels import balanced_kmeans  # noqa: E402
from t2g_lib.tokens import tokenize_database  # noqa: E402

CHILD = "order items.v2"


def planted_db(seed: int = 0):
    """3 tables, 2 FKs, 3 planted groups: parents carry a noisy group signal, children
    inherit their parent's group with a weaker one of their own. Names are hostile."""
    rng = np.random.default_rng(seed)
    n_parent, n_other, n_child = 150, 40, 450
    g = rng.integers(0, 3, n_parent)
    centers = np.array([[-1.5, 0.0], [0.0, 1.5], [1.5, -1.0]])
    names = np.array(["rouge", "grün", "blue"])
    parent = pd.DataFrame(
        {
            "keys": np.arange(n_parent),
            "update": centers[g, 0] + rng.normal(0, 0.8, n_parent),
            "naïve.value": centers[g, 1] + rng.normal(0, 0.8, n_parent),
            "colour name": np.where(rng.random(n_parent) < 0.7, names[g], rng.choice(names, n_parent)),
        }
    )
    parent.loc[rng.choice(n_parent, 15, replace=False), "update"] = np.nan
    other = pd.DataFrame({"id": np.arange(n_other), "type": rng.normal(size=n_other)})
    par = rng.integers(0, n_parent, n_child)
    child = pd.DataFrame(
        {
            "order id": np.arange(n_child),
            "parent.keys": par,
            "other ref": rng.integers(0, n_other, n_child),
            "amount $": centers[g[par], 0] + rng.normal(0, 1.5, n_child),
            "when": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(np.sort(rng.integers(0, 1000, n_child)), unit="D"),
        }
    )
    db = Database(
        {
            "keys": Table(parent, {}, "keys", None),
            "update": Table(other, {}, "id", None),
            CHILD: Table(child, {"parent.keys": "keys", "other ref": "update"}, "order id", "when"),
        }
    )
    types = {
        "keys": {"keys": "key", "update": "numerical", "naïve.value": "numerical", "colour name": "categorical"},
        "update": {"id": "key", "type": "numerical"},
        CHILD: {"order id": "key", "parent.keys": "key", "other ref": "key", "amount $": "numerical", "when": "timestamp"},
    }
    return db, types, {"keys": g, CHILD: g[par]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    db, types, groups = planted_db()
    tokens = tokenize_database(db, types, tmp_path_factory.mktemp("cache"))
    return db, tokens, groups


CONFIG = PretrainConfig(clusters={"keys": 3, CHILD: 3}, seed=7)


@pytest.fixture(scope="module")
def result(setup) -> PretrainResult:
    db, tokens, _ = setup
    return pretrain_clusters(db, tokens, CONFIG, log=lambda _: None)


def test_outputs_have_documented_shapes(setup, result: PretrainResult) -> None:
    db, tokens, _ = setup
    assert result.tables == tokens.tables
    for t in result.tables:
        n = len(db.table_dict[t].df)
        k = CONFIG.k_for(t, n)
        assert result.embeddings[t].shape == (n, CONFIG.embedding_dim) and result.embeddings[t].dtype == np.float32
        assert result.pseudo_labels[t].shape == (n,)
        assert result.centroids[t].shape == (k, CONFIG.embedding_dim)
        # centroids are cluster means in the embedding space
        y = result.pseudo_labels[t]
        np.testing.assert_allclose(
            result.centroids[t][y[0]], result.embeddings[t][y == y[0]].mean(0), rtol=1e-4, atol=1e-5
        )
    assert CONFIG.k_for("update", 40) == 2  # default k_t = clip(round(sqrt(n/20)), 2, 32)
    assert len(result.history["loss"]) == CONFIG.epochs
    assert len(result.history["nmi"]) == CONFIG.epochs // CONFIG.kmeans_every


def test_no_cluster_above_max_share(result: PretrainResult) -> None:
    for t, y in result.pseudo_labels.items():
        k = CONFIG.k_for(t, len(y))
        counts = np.bincount(y, minlength=k)
        bound = max(CONFIG.max_cluster_share, np.ceil(len(y) / k) / len(y))
        assert counts.max() / len(y) <= bound + 1e-12
        assert (counts > 0).all()


def test_recovers_planted_groups(setup, result: PretrainResult) -> None:
    from sklearn.metrics import adjusted_rand_score

    _, _, groups = setup
    for t, g in groups.items():
        assert adjusted_rand_score(g, result.pseudo_labels[t]) > 0.3, t


def test_same_seed_same_bytes(setup, result: PretrainResult) -> None:
    db, tokens, _ = setup
    again = pretrain_clusters(db, tokens, CONFIG, log=lambda _: None)
    for t in result.tables:
        assert result.embeddings[t].tobytes() == again.embeddings[t].tobytes()
        assert result.pseudo_labels[t].tobytes() == again.pseudo_labels[t].tobytes()
        assert result.centroids[t].tobytes() == again.centroids[t].tobytes()
    assert result.history["loss"] == again.history["loss"]


def test_save_load_roundtrip(result: PretrainResult, tmp_path: Path) -> None:
    result.save(tmp_path / "pre")
    names = {p.name for p in (tmp_path / "pre").iterdir()}
    assert "meta.json" in names and "embeddings_0.npy" in names and "encoder.pt" in names
    assert not any(t in n for n in names for t in ("keys", "update", CHILD))
    loaded = PretrainResult.load(tmp_path / "pre")
    assert loaded.tables == result.tables and loaded.config == result.config
    for t in result.tables:
        np.testing.assert_array_equal(loaded.embeddings[t], result.embeddings[t])
        np.testing.assert_array_equal(loaded.pseudo_labels[t], result.pseudo_labels[t])
        np.testing.assert_array_equal(loaded.centroids[t], result.centroids[t])
    assert loaded.history == result.history
    assert all(torch.equal(loaded.encoder_state[k], v) for k, v in result.encoder_state.items())


def test_frozen_encoder_reproduces_embeddings(setup, result: PretrainResult) -> None:
    from t2g_lib.encoder import RowEncoder

    _, tokens, _ = setup
    enc = RowEncoder(tokens, CONFIG.dim)
    enc.load_state_dict(result.encoder_state)
    enc.eval()
    i = tokens.tables.index(CHILD)
    out = enc.embed(i, tokens.table_tokens[i].frame).numpy()
    np.testing.assert_allclose(out, result.embeddings[CHILD][:, : CONFIG.dim], rtol=1e-5, atol=1e-6)


def test_embeddings_keep_the_rows_own_values(setup, result: PretrainResult) -> None:
    """A row's own numerical column is linearly recoverable from its embedding: the token
    PCA half keeps what clustering may discard (the encoder half alone need not)."""
    from sklearn.linear_model import LinearRegression

    db, _, _ = setup
    amount = db.table_dict[CHILD].df["amount $"].to_numpy()
    emb = result.embeddings[CHILD]
    r2 = LinearRegression().fit(emb[:, CONFIG.dim :], amount).score(emb[:, CONFIG.dim :], amount)
    assert r2 > 0.95


def test_balance_guard_splits_a_dominant_cluster() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 0.1, (900, 4)), rng.normal(5, 0.1, (100, 4))]
    for k in (2, 3, 5):
        y = balanced_kmeans(x, k, max_share=0.5, seed=0, sample=300, n_init=1)
        counts = np.bincount(y, minlength=k)
        assert counts.max() <= 500 and (counts > 0).all()
    same = balanced_kmeans(np.zeros((101, 3)), 4, 0.5, 0, 1000, 1)
    assert (np.bincount(same, minlength=4) > 0).all()


def test_capacity_assignment_in_chunks_is_the_whole_assignment(monkeypatch) -> None:
    """Ranks are argsorted a chunk of rows at a time into a small integer type; the
    assignment equals the one from whole-array int64 ranks, and no cluster exceeds its cap."""
    import t2g_lib.pseudo_labels as pseudo_labels

    rng = np.random.default_rng(0)
    d = rng.random((1000, 7)) ** 3  # skewed: most rows want the same few centroids
    whole = pseudo_labels.capacity_assign(d, cap=150)
    monkeypatch.setattr(pseudo_labels, "ASSIGN_CHUNK", 33)
    chunked = pseudo_labels.capacity_assign(d, cap=150)
    np.testing.assert_array_equal(chunked, whole)
    assert np.bincount(whole, minlength=7).max() <= 150 and (whole >= 0).all()
    # The reference: rows propose in the int64 rank order of the previous implementation.
    order = np.argsort(d, axis=1, kind="stable")
    first = order[:, 0]
    taken = np.bincount(first, minlength=7) <= 150
    np.testing.assert_array_equal(whole[taken[first]], first[taken[first]])


TREES = PretrainConfig(clusters={"keys": 3, CHILD: 3}, seed=7, full_graph_rows=0, tree_seeds=64, tree_steps=2)


def test_sampled_tree_steps_for_large_databases(setup, result: PretrainResult) -> None:
    """Above ``full_graph_rows`` rows, steps train on sampled trees: the documented outputs,
    the balance bound, the planted groups and the seed's determinism hold as for full-graph
    steps, and below it nothing changes (``result`` trained full-graph steps)."""
    from sklearn.metrics import adjusted_rand_score

    db, tokens, groups = setup
    trees = pretrain_clusters(db, tokens, TREES, log=lambda _: None)
    again = pretrain_clusters(db, tokens, TREES, log=lambda _: None)
    assert len(trees.history["loss"]) == TREES.epochs * TREES.tree_steps
    assert trees.history["loss"] == again.history["loss"]
    assert trees.history["loss"] != result.history["loss"][: len(trees.history["loss"])]
    for t in trees.tables:
        n = len(db.table_dict[t].df)
        y = trees.pseudo_labels[t]
        assert trees.embeddings[t].shape == (n, TREES.embedding_dim)
        assert trees.embeddings[t].tobytes() == again.embeddings[t].tobytes()
        assert np.bincount(y).max() / n <= max(TREES.max_cluster_share, np.ceil(n / len(np.unique(y))) / n) + 1e-12
    for t, g in groups.items():
        assert adjusted_rand_score(g, trees.pseudo_labels[t]) > 0.3, t


def test_rounds_on_sampled_trees_label_pools_and_the_final_assignment_every_row(setup) -> None:
    """Above ``full_graph_rows``, a round's k-means labels a pool of at most ``round_rows``
    rows per table (drawn once) and the steps train on it; the final assignment still labels
    every row, within the balance bound, and the seed fixes every byte."""
    from sklearn.metrics import adjusted_rand_score

    db, tokens, groups = setup
    config = PretrainConfig(**{**TREES.__dict__, "round_rows": 100})
    pooled = pretrain_clusters(db, tokens, config, log=lambda _: None)
    again = pretrain_clusters(db, tokens, config, log=lambda _: None)
    whole = pretrain_clusters(db, tokens, TREES, log=lambda _: None)  # every table fits a pool of 50,000
    assert pooled.history["loss"] == again.history["loss"] != whole.history["loss"]
    for t in pooled.tables:
        n = len(db.table_dict[t].df)
        y = pooled.pseudo_labels[t]
        assert y.shape == (n,) and pooled.embeddings[t].tobytes() == again.embeddings[t].tobytes()
        assert np.bincount(y).max() / n <= max(TREES.max_cluster_share, np.ceil(n / len(np.unique(y))) / n) + 1e-12
    for t, g in groups.items():
        assert adjusted_rand_score(g, pooled.pseudo_labels[t]) > 0.3, t


def test_tree_batches_are_bounded_whatever_the_table_size(setup) -> None:
    """A step on sampled trees holds at most ``tree_seeds`` trees, each with at most its
    parents and ``tree_neighbors[h]`` children per relation at hop h: a bound set by the
    schema and the config, not by the rows (the guard against steps that grow with data)."""
    from t2g_lib.graph import GraphSchema
    from t2g_lib.pretrain_trees import TreeBatches

    db, _, _ = setup
    gs = GraphSchema.from_database(db)
    fanout = [2, 3]
    batches = TreeBatches(db, fanout, seeds=16, seed=0, pool=[np.arange(len(db.table_dict[t].df)) for t in gs.tables])
    per_node = [1 + sum(r.child == t for r in gs.relations) for t in gs.tables]  # a node and its parents
    children = max(sum(r.parent == t for r in gs.relations) for t in gs.tables)
    bound = 16
    for f in fanout:
        bound *= max(per_node) + children * f
    for i, table in enumerate(gs.tables):
        rows = batches.pool[i][batches.draw(i)]
        sub = batches.trees(i, rows)
        assert len(rows) == min(16, len(db.table_dict[table].df))
        assert sum(sub[nt].num_nodes for nt in sub.node_types) <= bound
        np.testing.assert_array_equal(sub[gs.node_type(table)].n_id[: len(rows)].numpy(), rows)


def test_chunked_gnn_pass_is_the_full_graph_pass(setup) -> None:
    """The k-means pass of a large database runs the GNN layer by layer on chunks of rows;
    on a small one, with chunks of 7 rows, it gives the full-graph outputs (to float rounding:
    a relation's linear map is applied after the mean instead of before)."""
    import torch

    from t2g_lib.encoder import ClusterGNN, RowEncoder
    from t2g_lib.graph import build_reg

    db, tokens, _ = setup
    torch.manual_seed(0)
    graph, gs = build_reg(db)
    encoder = RowEncoder(tokens, 16).eval()
    gnn = ClusterGNN(gs.metadata(), 16, 24).eval()
    adj = gnn.adjacency(graph)
    embs = [encoder.embed(i, tt.frame) for i, tt in enumerate(tokens.table_tokens)]
    with torch.no_grad():
        full = gnn(embs, adj)
    chunked = gnn.infer(embs, adj, chunk=7)
    assert [h.shape for h in chunked] == [h.shape for h in full]
    for a, b in zip(full, chunked):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_large_table_clustering_in_float32_chunks_matches_the_whole_table() -> None:
    """A large table's outputs are clustered float32, a chunk of rows at a time: distances equal
    the whole-array ones (to float32 rounding) and the pseudo-labels are the same partition."""
    from sklearn.metrics import adjusted_rand_score

    from t2g_lib.pseudo_labels import cluster_table, sq_dists

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 4, (5, 16))
    h = centres[rng.integers(0, 5, 3000)] + rng.normal(0, 1, (3000, 16))
    c = rng.normal(0, 1, (5, 16))
    np.testing.assert_allclose(sq_dists(h.astype(np.float32), c.astype(np.float32), 257), sq_dists(h, c), rtol=1e-4)
    config = PretrainConfig(kmeans_sample=1000, seed=0)
    whole, w_whole, b_whole = cluster_table(h, 5, config, 0, None)
    chunked, w_chunked, b_chunked = cluster_table(h.astype(np.float32), 5, config, 0, None, chunk=257)
    assert adjusted_rand_score(whole, chunked) > 0.99
    assert np.bincount(chunked).max() <= 0.5 * len(h)
    np.testing.assert_allclose(w_chunked, w_whole, rtol=1e-2, atol=1e-3)
