"""Bad input through the ``t2g`` command: every defect is named on the terminal (table,
column, rows or values), validation and the stages after it agree, and nothing is a traceback.

Each case is a copy of the tiny shop database with one defect planted in its files, as a
user's export would have it; the commands run through real Dagster runs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from t2g_lib.data.format import read_tables
from shop import make_shop, overwrite_table, quick_knobs
from t2g_cli.main import app


@pytest.fixture()
def data(tmp_path, monkeypatch) -> Path:
    make_shop(tmp_path / "data" / "shop")
    monkeypatch.setenv("T2G_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path / "data"


def distill(data: Path, *args: str):
    storage = data.parent / "storage"
    return CliRunner().invoke(app, ["distill", "shop", "churn", "--ratio", "0.2", "--out", str(storage),
                                    *quick_knobs(data.parent), *args])


def read(data: Path, table: str) -> pd.DataFrame:
    return read_tables(data / "shop")[table]


def assert_named_on_one_screen(result, *names: str) -> None:
    assert "Traceback" not in result.output, result.output
    for name in names:
        assert name in result.output, f"{name!r} not in:\n{result.output}"


def test_dangling_keys_within_the_bound_become_missing_links(data):
    order = read(data, "order")
    bad = order.index[::40]  # 2.5% of the orders point at no customer
    order.loc[bad, "customer_id"] = 5000 + bad
    overwrite_table(data / "shop", "order", order)
    result = distill(data)
    assert result.exit_code == 0, result.output
    share = len(bad) / len(order)
    line = next(l for l in result.output.splitlines() if "match no row of 'customers'" in l)
    assert "table 'order', column 'customer_id'" in line
    assert f"{len(bad)} of {len(order)} values ({share:.2%})" in line
    assert "distilled database:" in result.output


def test_text_timestamps_are_parsed_and_the_unparsable_ones_named(data):
    order = read(data, "order")
    order["placed"] = order["placed"].dt.strftime("%Y-%m-%d %H:%M:%S")
    overwrite_table(data / "shop", "order", order)
    assert distill(data).exit_code == 0  # ISO text is as good as a timestamp column

    order.loc[[7, 8], "placed"] = ["not a date", "31/31/2024"]
    overwrite_table(data / "shop", "order", order)
    result = distill(data)
    assert result.exit_code == 1
    assert_named_on_one_screen(
        result, "validated_schema", "time_columns", "table 'order'", "column 'placed'", "not a date", "row 7"
    )


def test_duplicated_primary_key_names_table_column_and_rows(data):
    customers = read(data, "customers")
    customers.loc[4, "customer_id"] = 3
    overwrite_table(data / "shop", "customers", customers)
    result = distill(data)
    assert result.exit_code == 1
    assert_named_on_one_screen(
        result, "blocking check primary_keys failed", "table 'customers'", "column 'customer_id'", "row 4"
    )


def test_empty_table_is_named(data):
    overwrite_table(data / "shop", "products", read(data, "products").iloc[:0])
    result = distill(data)
    assert result.exit_code == 1
    assert_named_on_one_screen(result, "blocking check not_empty failed", "'products'")


def test_corrupt_parquet_names_its_table(data):
    (data / "shop" / "db" / "products.parquet").write_bytes(b"this is not parquet")
    result = distill(data)
    assert result.exit_code == 1
    assert_named_on_one_screen(result, "raw_tables failed", "table 'products'", "cannot be read")


def test_unknown_database_fails_before_any_run_listing_the_known_ones(data):
    result = CliRunner().invoke(app, ["distill", "shpo", "churn"])
    assert result.exit_code == 1
    assert_named_on_one_screen(result, "unknown database 'shpo'", "known: shop")
    assert "t2g:" not in result.output  # no progress bar: no Dagster run started


def test_prepare_names_the_bundled_databases_when_asked_for_another(tmp_path):
    result = CliRunner().invoke(app, ["prepare", "nosuch", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert_named_on_one_screen(result, "no bundled database 'nosuch'", "lahman, completejourney")
    assert not any(tmp_path.iterdir())  # nothing written


def _sqlite_with_text_dates(path: Path, dates: bool = True) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, joined TEXT)")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), "
                "placed TEXT, amount REAL)")
    con.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                    [(i, f"c{i}", f"2021-0{1 + i % 9}-14" if dates else "soon") for i in range(10)])
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)",
                    [(i, i % 10, f"2022-{1 + i % 12:02d}-02 13:00:00" if dates else "later", i * 1.5)
                     for i in range(40)])
    con.commit()
    con.close()
    return path


def test_import_sqlite_with_text_dates(data, tmp_path):
    source = _sqlite_with_text_dates(tmp_path / "shop.sqlite")
    result = CliRunner().invoke(app, ["import", str(source), "--name", "textdates"])
    assert result.exit_code == 0, result.output
    manifest = (data / "textdates" / "manifest.yaml").read_text()
    assert "time_col: placed" in manifest and "time_col: joined" in manifest
    placed = pd.read_parquet(data / "textdates" / "db" / "orders.parquet")["placed"]
    assert pd.api.types.is_datetime64_any_dtype(placed) and placed.notna().all()

    result = CliRunner().invoke(app, ["import", str(source), "--name", "chosen", "--time-col", "customers.-",
                                      "--val-timestamp", "2022-06-01", "--test-timestamp", "2022-09-01"])
    assert result.exit_code == 0, result.output
    manifest = (data / "chosen" / "manifest.yaml").read_text()
    assert "time_col: joined" not in manifest and "2022-06-01" in manifest


def test_import_without_dates_says_what_to_pass(data, tmp_path):
    source = _sqlite_with_text_dates(tmp_path / "nodates.sqlite", dates=False)
    result = CliRunner().invoke(app, ["import", str(source), "--name", "nodates"])
    assert result.exit_code == 1
    assert_named_on_one_screen(result, "error:", "--val-timestamp", "--time-col TABLE.COL")
