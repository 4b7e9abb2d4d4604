"""Temporal sampler and propagation: no future rows, most-recent-k, hand-checked math."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from relbench.base import Database, Table
from torch_geometric.data import HeteroData

from t2g_lib.graph import GraphSchema
from t2g_lib.propagate import propagate
from t2g_lib.temporal import NO_TIME_LIMIT, UNTIMED, TemporalSampler, max_leak_seconds, to_seconds

DAY = 86_400
T0 = pd.Timestamp("2020-01-01")


def _db() -> Database:
    """Customers (timeless) <- orders (timed) -> stores (timed); awkward user names."""
    customers = pd.DataFrame({"id": np.arange(3)})
    stores = pd.DataFrame({"sid": [0, 1], "opened": [T0, T0 + pd.Timedelta(days=10)]})
    # customer 0: orders on days 1..5, plus a tie on day 3 (rows 0..5); customer 1: day 7.
    order_days = [1, 2, 3, 3, 4, 5, 7]
    orders = pd.DataFrame({
        "oid": np.arange(7),
        "customer id": [0, 0, 0, 0, 0, 0, 1],
        "keys": [0, 0, 1, 0, 1, 0, 1],
        "update": [T0 + pd.Timedelta(days=d) for d in order_days],
    })
    return Database({
        "my customers": Table(customers, {}, "id", None),
        "order.items": Table(
            orders, {"customer id": "my customers", "keys": "stores"}, "oid", "update"
        ),
        "stores": Table(stores, {}, "sid", "opened"),
    })


def _feats(db: Database, d: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {t: torch.randn(len(tab.df), d, generator=g) for t, tab in db.table_dict.items()}


def _secs(days: float) -> int:
    return int((T0 + pd.Timedelta(days=days)).timestamp())


def test_to_seconds_ignores_datetime_unit() -> None:
    ns = pd.Series([T0]).astype("datetime64[ns]")
    us = pd.Series([T0]).astype("datetime64[us]")
    assert to_seconds(ns)[0] == to_seconds(us)[0] == int(T0.timestamp())


def test_most_recent_k_hand_checked() -> None:
    db = _db()
    gs = GraphSchema.from_database(db)
    sampler = TemporalSampler(db, num_neighbors=[2])
    sub = sampler.sample("my customers", np.array([0, 2]), np.array([_secs(3.5)] * 2), _feats(db))
    o = gs.node_type("order.items")
    # customer 0 at day 3.5 sees orders on days 1, 2, 3, 3 (rows 0-3); the 2 most recent are
    # the day-3 tie, rows 2 and 3. Customer 2 has no orders.
    assert sorted(sub[o].n_id.tolist()) == [2, 3]
    assert sub[o].batch.tolist() == [0, 0]
    rel = next(r for r in gs.relations if r.fkey_col == "customer id")
    fwd, rev = gs.edge_types(rel)
    assert fwd == (o, rel.name, gs.node_type("my customers"))
    assert sub[fwd].edge_index.tolist() == [[0, 1], [0, 0]]  # orders -> their seed customer
    assert sub[rev].edge_index.numel() == 0
    c = gs.node_type("my customers")
    assert sub[c].n_id.tolist() == [0, 2]  # seeds first, in order
    assert sub[c].time.tolist() == [UNTIMED, UNTIMED]


def test_samplers_of_one_database_share_its_index_and_keep_their_own_caps() -> None:
    """The KRR stage, its judge and its coresets each sample one database: they share one
    index (built once), each with its own neighbour caps, and the index goes with the database."""
    import gc
    import weakref

    from t2g_lib.temporal import _INDEXES

    db = _db()
    two, one = TemporalSampler(db, num_neighbors=[2]), TemporalSampler(db, num_neighbors=[1])
    assert two.children is one.children and two.parent_of is one.parent_of and two.times is one.times
    o = GraphSchema.from_database(db).node_type("order.items")
    seeds, at = np.array([0]), np.array([_secs(3.5)])
    assert sorted(two.sample("my customers", seeds, at)[o].n_id.tolist()) == [2, 3]
    assert len(one.sample("my customers", seeds, at)[o].n_id) == 1
    assert TemporalSampler(_db(), [2]).children is not two.children  # another database, its own
    alive = weakref.ref(_INDEXES[db])
    del db, two, one
    gc.collect()
    assert alive() is None


def test_parent_time_filter_and_edge_direction() -> None:
    db = _db()
    gs = GraphSchema.from_database(db)
    sampler = TemporalSampler(db, num_neighbors=[8])
    s = gs.node_type("stores")
    # order 6 (day 7) points to store 1, opened on day 10: invisible at day 8, visible at 11.
    early = sampler.sample("order.items", np.array([6]), np.array([_secs(8)]), _feats(db))
    late = sampler.sample("order.items", np.array([6]), np.array([_secs(11)]), _feats(db))
    assert early[s].num_nodes == 0
    assert late[s].n_id.tolist() == [1]
    rel = next(r for r in gs.relations if r.fkey_col == "keys")
    _, rev = gs.edge_types(rel)
    assert rev[0] == s and late[rev].edge_index.tolist() == [[0], [0]]  # store -> order


def test_never_later_than_seed_and_planted_leak_detected() -> None:
    db = _db()
    feats = _feats(db)
    sampler = TemporalSampler(db, num_neighbors=[8, 8])
    seeds = np.array([0, 1, 0])
    times = np.array([_secs(2.5), _secs(9), _secs(6)])
    sub = sampler.sample("my customers", seeds, times, feats)
    assert max_leak_seconds(sub) <= 0
    for nt in sub.node_types:
        timed = sub[nt].time != UNTIMED
        assert bool((sub[nt].time[timed] <= sub[nt].seed_time[timed]).all())
        table = GraphSchema.from_database(db).table_of(nt)
        assert torch.equal(sub[nt].x, feats[table][sub[nt].n_id])
    # Sample one seed without the filter, then plant its real time: the check must fire.
    unfiltered = sampler.sample("my customers", np.array([0]), np.array([NO_TIME_LIMIT]), feats)
    for nt in unfiltered.node_types:
        unfiltered[nt].seed_time = torch.full_like(unfiltered[nt].seed_time, _secs(2.5))
    assert max_leak_seconds(unfiltered) == _secs(10) - _secs(2.5)  # store 1, via an order


def test_sampler_is_deterministic() -> None:
    db = _db()
    sampler = TemporalSampler(db, num_neighbors=[3, 3])
    args = ("order.items", np.arange(7), np.full(7, _secs(6)), _feats(db))
    a, b = sampler.sample(*args), sampler.sample(*args)
    for nt in a.node_types:
        assert torch.equal(a[nt].n_id, b[nt].n_id)
    for et in a.edge_types:
        assert torch.equal(a[et].edge_index, b[et].edge_index)


def _three_node_graph(x0: torch.Tensor) -> HeteroData:
    """t0: one node; t1: nodes 0, 1 linked to it, node 2 isolated."""
    data = HeteroData()
    data["t0"].x = x0
    data["t1"].x = torch.tensor([[2.0], [4.0], [10.0]])
    data["t1", "f2p_0", "t0"].edge_index = torch.tensor([[0, 1], [0, 0]])
    data["t0", "rev_f2p_0", "t1"].edge_index = torch.tensor([[0, 0], [0, 1]])
    return data


def test_propagate_hand_computed() -> None:
    x0 = torch.tensor([[1.0]], requires_grad=True)
    data = _three_node_graph(x0)
    # h1[t0] = mean(1, mean(2, 4)) = 2; h1[t1] = (mean(2, 1), mean(4, 1), 10) = (1.5, 2.5, 10)
    # h2[t0] = mean(2, mean(1.5, 2.5)) = 2; h2[t1] = (mean(1.5, 2), mean(2.5, 2), 10)
    assert propagate(data, 2, "t0").tolist() == [[1.0, 2.0, 2.0]]
    expected = [[2.0, 1.5, 1.75], [4.0, 2.5, 2.25], [10.0, 10.0, 10.0]]
    assert propagate(data, 2, "t1").tolist() == expected
    assert propagate(data, 1, "t1", num_seeds=1).tolist() == [[2.0, 1.5]]
    propagate(data, 2, "t1").sum().backward()
    assert x0.grad is not None and float(x0.grad) > 0


def test_propagate_on_sample_matches_full_graph_when_uncapped() -> None:
    """A tree sample with no caps and no time limit is the exact K-hop computation."""
    from t2g_lib.graph import build_reg

    db = _db()
    feats = _feats(db)
    reg, gs = build_reg(db, {t: f.numpy() for t, f in feats.items()})
    sampler = TemporalSampler(db, num_neighbors=[100, 100])
    c = gs.node_type("my customers")
    sub = sampler.sample("my customers", np.arange(3), np.full(3, NO_TIME_LIMIT), feats)
    assert torch.allclose(propagate(sub, 2, c, 3), propagate(reg, 2, c), atol=1e-6)


@pytest.mark.parametrize("table", ["my customers", "order.items"])
def test_every_node_type_present(table: str) -> None:
    db = _db()
    sub = TemporalSampler(db).sample(table, np.array([0]), np.array([_secs(1)]), _feats(db))
    node_types, edge_types = GraphSchema.from_database(db).metadata()
    assert sorted(sub.node_types) == sorted(node_types)
    assert sorted(sub.edge_types) == sorted(edge_types)
