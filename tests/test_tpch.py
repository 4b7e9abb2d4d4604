"""The TPC-H scale database: every generated row kept under its keys, row times that leak
nothing, labels equal to a recomputation from the generator's own parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import load_dataset, read_manifest, read_tables
from t2g_lib.data.tpch import (IDENTIFYING, LOOKBACK, MIN_SCALE, TABLES, TIMEDELTA, build_tpch, generate_parquet,
                               load_source_tables)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return load_source_tables(generate_parquet(MIN_SCALE, tmp_path_factory.mktemp("tpch-src")))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tpch(tmp_path_factory.mktemp("tpch"), scale=MIN_SCALE)


def test_every_row_is_kept_and_every_key_resolves(folder: Path, source: dict[str, pd.DataFrame]) -> None:
    db = read_tables(folder)
    specs = read_manifest(folder).tables
    assert set(db) == set(TABLES)
    assert {t: len(df) for t, df in db.items()} == {t: len(df) for t, df in source.items()}
    for t, spec in specs.items():
        for col, parent in spec.fkeys.items():
            assert db[t][col].notna().all(), f"{t}.{col} has unresolved keys"
            assert db[t][col].max() < len(db[parent])
        assert not set(IDENTIFYING) & set(db[t].columns)
    assert "l_comment" in db["lineitem"] and "c_comment" in db["customer"]  # free text stays
    relbench_db = load_dataset(folder).get_db(upto_test_timestamp=False)
    assert sum(len(t.df) for t in relbench_db.table_dict.values()) == sum(len(df) for df in db.values())


def test_a_line_item_is_known_when_received_after_its_order(folder: Path) -> None:
    db = read_tables(folder)
    specs = read_manifest(folder).tables
    items, orders = db["lineitem"], db["orders"]
    order_of = items[next(c for c, p in specs["lineitem"].fkeys.items() if p == "orders")].to_numpy(dtype=np.int64)
    assert (items["l_receiptdate"].to_numpy() >= orders["o_orderdate"].to_numpy()[order_of]).all()
    assert (items["l_shipdate"] <= items["l_receiptdate"]).all()  # every date a line carries is past
    assert items["l_receiptdate"].is_monotonic_increasing and orders["o_orderdate"].is_monotonic_increasing


def test_reorder_labels_equal_a_recomputation(folder: Path, source: dict[str, pd.DataFrame]) -> None:
    orders = source["orders"]
    customers = np.sort(source["customer"]["c_custkey"].unique())  # surrogate key = rank
    test = pd.read_parquet(folder / "tasks" / "customer-reorder" / "test.parquet")
    cid = read_manifest(folder).tables["customer"].pkey
    lookback, window = pd.Timedelta(LOOKBACK), pd.Timedelta(TIMEDELTA)
    for t, g in test.groupby("timestamp"):
        active = orders[(orders["o_orderdate"] <= t) & (orders["o_orderdate"] > t - lookback)]["o_custkey"].unique()
        future = set(orders[(orders["o_orderdate"] > t) & (orders["o_orderdate"] <= t + window)]["o_custkey"])
        expect = {int(np.searchsorted(customers, c)): int(c in future) for c in active}
        assert dict(zip(g[cid].astype(int), g["reorder"].astype(int))) == expect
    assert 0.2 < test["reorder"].mean() < 0.8


def test_a_scale_below_the_generators_floor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least"):
        generate_parquet(MIN_SCALE / 10, tmp_path)
