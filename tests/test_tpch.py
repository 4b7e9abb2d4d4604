"""The TPC-H scale database: every generated row kept under its keys, row times after what a
row tells, labels equal to a recomputation from the generator's own parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import load_dataset, read_manifest, read_tables
from t2g_lib.data.tpch import (FUTURE, IDENTIFYING, LOOKBACK, MIN_SCALE, TABLES, TIMEDELTA, build_tpch,
                               generate_parquet, load_source_tables)


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_parquet(MIN_SCALE, tmp_path_factory.mktemp("tpch-src"))


@pytest.fixture(scope="module")
def source(parquet: Path) -> dict[str, pd.DataFrame]:
    return load_source_tables(parquet)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tpch(tmp_path_factory.mktemp("tpch"), scale=MIN_SCALE)


def test_every_row_is_kept_and_every_key_resolves(folder: Path, parquet: Path) -> None:
    db = read_tables(folder)
    specs = read_manifest(folder).tables
    assert set(db) == set(TABLES)
    assert {t: len(df) for t, df in db.items()} == {t: pq.read_metadata(parquet / f"{t}.parquet").num_rows for t in TABLES}
    for t, spec in specs.items():
        for col, parent in spec.fkeys.items():
            assert db[t][col].notna().all(), f"{t}.{col} has unresolved keys"
            assert db[t][col].max() < len(db[parent])
        assert not (set(IDENTIFYING) | set(FUTURE)) & set(db[t].columns)
    assert "l_comment" in db["lineitem"] and "c_comment" in db["customer"]  # free text stays
    relbench_db = load_dataset(folder).get_db(upto_test_timestamp=False)
    assert sum(len(t.df) for t in relbench_db.table_dict.values()) == sum(len(df) for df in db.values())


def test_a_line_item_is_known_when_received_after_its_order(folder: Path) -> None:
    db = read_tables(folder)
    specs = read_manifest(folder).tables
    items, orders = db["lineitem"], db["orders"]
    order_of = items[next(c for c, p in specs["lineitem"].fkeys.items() if p == "orders")].to_numpy(dtype=np.int64)
    assert (items["l_receiptdate"].to_numpy() >= orders["o_orderdate"].to_numpy()[order_of]).all()
    assert (items["l_shipdate"] <= items["l_receiptdate"]).all()  # shipped before it is known
    assert items["l_receiptdate"].is_monotonic_increasing and orders["o_orderdate"].is_monotonic_increasing


def test_reorder_labels_equal_a_recomputation(folder: Path, source: dict[str, pd.DataFrame]) -> None:
    orders = source["orders"]
    assert source["customer"]["c_custkey"].is_monotonic_increasing  # so the surrogate key is the row's rank
    customers = source["customer"]["c_custkey"].to_numpy()
    cid = read_manifest(folder).tables["customer"].pkey
    lookback, window = pd.Timedelta(LOOKBACK), pd.Timedelta(TIMEDELTA)
    for split in ("train", "val", "test"):
        labels = pd.read_parquet(folder / "tasks" / "customer-reorder" / f"{split}.parquet")
        for t, g in labels.groupby("timestamp"):
            active = orders[(orders["o_orderdate"] <= t) & (orders["o_orderdate"] > t - lookback)]["o_custkey"].unique()
            future = set(orders[(orders["o_orderdate"] > t) & (orders["o_orderdate"] <= t + window)]["o_custkey"])
            expect = {int(np.searchsorted(customers, c)): int(c in future) for c in active}
            assert dict(zip(g[cid].astype(int), g["reorder"].astype(int))) == expect, (split, t)
        assert 0.2 < labels["reorder"].mean() < 0.8


def test_a_scale_below_the_generators_floor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least"):
        generate_parquet(MIN_SCALE / 10, tmp_path)
