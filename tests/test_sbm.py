"""The SBM stage on a small database with planted blocks, planted P and skewed degrees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

from t2g_lib.graph import GraphSchema, fkey_index
from t2g_lib.sbm import (
    allocate_to_blocks, budget_for, budget_per_table, generate_sbm, linking_matrix, sbm_report,
)

P_USER = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]])
P_ITEM = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])


def _draw_parents(rng, child_blocks, P, parent_blocks, propensity):
    """Planted SBM: parent block by P[child block], parent row by propensity in the block."""
    cum = np.cumsum(P, axis=1)[child_blocks]
    pb = np.minimum((rng.random(len(child_blocks))[:, None] > cum).sum(axis=1), P.shape[1] - 1)
    out = np.empty(len(child_blocks), dtype=np.int64)
    for b in range(P.shape[1]):
        members = np.flatnonzero(parent_blocks == b)
        kids = np.flatnonzero(pb == b)
        w = propensity[members] / propensity[members].sum()
        out[kids] = rng.choice(members, size=len(kids), p=w)
    return out


def make_db(seed: int = 0, n_users: int = 600, n_items: int = 300, n_orders: int = 4000):
    """users(3 blocks) <- orders(4 blocks) -> items(2 blocks); lognormal parent activity;
    5% of orders have no item. Returns db, pseudo-labels (the planted blocks), centroids."""
    rng = np.random.default_rng(seed)
    blocks = {
        "users": rng.integers(0, 3, n_users),
        "items": rng.integers(0, 2, n_items),
        "orders": rng.integers(0, 4, n_orders),
    }
    user_id = _draw_parents(rng, blocks["orders"], P_USER, blocks["users"], rng.lognormal(0, 1, n_users))
    item_id = pd.array(_draw_parents(rng, blocks["orders"], P_ITEM, blocks["items"], rng.lognormal(0, 1, n_items)),
                       dtype="Int64")
    item_id[rng.random(n_orders) < 0.05] = pd.NA
    db = Database({
        "users": Table(pd.DataFrame({"user_id": np.arange(n_users), "age": rng.normal(size=n_users)}),
                       {}, pkey_col="user_id"),
        "items": Table(pd.DataFrame({"item_id": np.arange(n_items), "price": rng.normal(size=n_items)}),
                       {}, pkey_col="item_id"),
        "orders": Table(pd.DataFrame({
            "order_id": np.arange(n_orders), "user_id": user_id, "item_id": item_id,
            "ts": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n_orders), unit="D"),
        }), {"user_id": "users", "item_id": "items"}, pkey_col="order_id", time_col="ts"),
    })
    centroids = {t: rng.normal(size=(int(b.max()) + 1, 4)) for t, b in blocks.items()}
    return db, blocks, centroids


@pytest.fixture(scope="module")
def planted():
    return make_db()


def test_budget_per_table():
    sizes = {"a": 1000, "b": 10, "c": 3}
    assert budget_per_table(sizes, ratio=0.01) == {"a": 10, "b": 2, "c": 2}
    assert budget_per_table(sizes, ratio=0.5, counts={"a": 7}) == {"a": 7, "b": 5, "c": 2}
    assert budget_per_table({"a": 1}, ratio=0.5) == {"a": 1}  # min_nodes never exceeds the table
    with pytest.raises(ValueError, match="'b'"):
        budget_per_table(sizes, counts={"a": 5})  # no ratio and no count for b
    with pytest.raises(ValueError, match="'c'.*outside"):
        budget_per_table(sizes, ratio=0.1, counts={"c": 4})
    with pytest.raises(ValueError, match="'zz'"):
        budget_per_table(sizes, ratio=0.1, counts={"zz": 4})
    with pytest.raises(ValueError, match="ratio"):
        budget_per_table(sizes, ratio=1.5)


def test_allocate_to_blocks():
    sizes = np.array([500, 300, 150, 45, 5, 0])
    for n in (6, 10, 37, 100, 1000):
        alloc = allocate_to_blocks(sizes, n)
        assert alloc.sum() == n
        assert alloc[-1] == 0  # an empty block gets nothing
        assert (alloc[:-1] >= 1).all()  # every non-empty block gets a node while n allows
        assert (alloc <= sizes).all()
        assert np.abs(alloc - n * sizes / sizes.sum()).max() <= 1.5
    assert allocate_to_blocks(sizes, 3).tolist() == [2, 1, 0, 0, 0, 0]  # too few for all blocks
    assert allocate_to_blocks(sizes, 0).sum() == 0


def test_linking_matrix_by_hand():
    child = np.array([0, 0, 0, 1, 1])
    parent_blocks = np.array([0, 1, 1])
    parent_index = np.array([0, 1, -1, 2, 2])  # one missing key: excluded
    P = linking_matrix(child, parent_blocks, parent_index, k_child=3, k_parent=2)
    np.testing.assert_allclose(P[0], [0.5, 0.5])
    np.testing.assert_allclose(P[1], [0.0, 1.0])
    np.testing.assert_allclose(P[2], [0.25, 0.75])  # no data: where parents fall overall


@pytest.mark.parametrize("ratio", [0.005, 0.05, 0.5])
def test_every_child_has_exactly_one_parent_and_budgets_are_met(planted, ratio):
    db, labels, cent = planted
    budgets = budget_for(db, str(ratio))
    g = generate_sbm(db, labels, cent, budgets, "users", seed=0)
    assert g.num_nodes() == budgets
    for rel in g.schema.relations:
        p = g.parents[rel.index]
        assert p.shape == (budgets[rel.child],)
        assert p.min() >= 0 and p.max() < budgets[rel.parent]
    for t in g.schema.tables:
        assert np.array_equal(g.x[t], cent[t].astype(np.float32)[g.blocks[t]])  # features = centroids
    assert g.y.shape == (budgets["users"],) and not g.y.any()
    report = sbm_report(g, db, labels)
    for t, info in report["tables"].items():
        assert info["budget"] == budgets[t] == sum(info["block_fill"])


def test_synthetic_linking_matrix_matches_real(planted):
    """Tolerance: max |P_real - P_syn| <= 0.1 over child blocks at ratio 0.5 (~500 synthetic
    children per block); the stratified draw lands far inside it."""
    db, labels, cent = planted
    g = generate_sbm(db, labels, cent, budget_for(db, "0.5"), "users", seed=1)
    report = sbm_report(g, db, labels)
    assert len(report["relations"]) == 2
    for rel in report["relations"]:
        assert rel["max_abs_diff"] <= 0.1, rel
        assert rel["mean_abs_diff"] <= 0.03, rel
    real = {r["parent"]: np.array(r["real_P"]) for r in report["relations"]}
    assert np.abs(real["users"] - P_USER).max() < 0.1  # the real P is the planted one
    assert np.abs(real["items"] - P_ITEM).max() < 0.1


def test_degree_correction_keeps_the_in_degree_distribution(planted):
    """Synthetic in-degree quantiles track the real ones (same mean degree at ratio 0.5); a
    within-block uniform choice would give Poisson degrees with far smaller spread."""
    db, labels, cent = planted
    g = generate_sbm(db, labels, cent, budget_for(db, "0.5"), "users", seed=2)
    qs = np.linspace(0.05, 0.95, 19)
    for rel in g.schema.relations:
        real_parent = fkey_index(db, rel)
        real = np.bincount(real_parent[real_parent >= 0], minlength=len(db.table_dict[rel.parent].df))
        syn = np.bincount(g.parents[rel.index], minlength=g.num_nodes()[rel.parent])
        real_q, syn_q = np.quantile(real, qs), np.quantile(syn, qs)
        assert np.corrcoef(real_q, syn_q)[0, 1] >= 0.95, (rel, real_q, syn_q)
        cv = lambda d: d.std() / d.mean()  # noqa: E731
        assert cv(syn) >= 0.7 * cv(real), (rel, cv(syn), cv(real))
        assert cv(syn) >= 1.5 / np.sqrt(syn.mean())  # well above the Poisson spread


def test_same_seed_same_graph(planted):
    db, labels, cent = planted
    budgets = budget_for(db, "0.1")
    a, b, c = (generate_sbm(db, labels, cent, budgets, "users", seed=s) for s in (7, 7, 8))
    for j in a.parents:
        assert np.array_equal(a.parents[j], b.parents[j])
    assert any(not np.array_equal(a.parents[j], c.parents[j]) for j in a.parents)
    assert all(np.array_equal(a.x[t], b.x[t]) and np.array_equal(a.blocks[t], b.blocks[t]) for t in a.x)


def test_bad_inputs_name_the_table(planted):
    db, labels, cent = planted
    budgets = budget_for(db, "0.1")
    with pytest.raises(ValueError, match="'items'.*shape"):
        generate_sbm(db, {**labels, "items": labels["items"][:-1]}, cent, budgets, "users", seed=0)
    with pytest.raises(ValueError, match="'orders'.*budget"):
        generate_sbm(db, labels, cent, {**budgets, "orders": 10**6}, "users", seed=0)
    with pytest.raises(ValueError, match="'users'.*pseudo-labels must lie"):
        generate_sbm(db, labels, {**cent, "users": cent["users"][:2]}, budgets, "users", seed=0)


def test_schema_order_is_graph_schema(planted):
    db, labels, cent = planted
    g = generate_sbm(db, labels, cent, budget_for(db, "0.1"), "users", seed=0)
    assert g.schema.to_dict() == GraphSchema.from_database(db).to_dict()
