"""Importing SQLite and DuckDB files with declared keys, overrides and awkward names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import load_dataset, read_manifest
from t2g_lib.data.importer import add_task_from_sql, import_database, parse_fkey
from t2g_lib.data.keys import ForeignKey

DDL = [
    'CREATE TABLE customers (id INTEGER PRIMARY KEY, "full name" TEXT, signup DATE)',
    'CREATE TABLE "order" (code TEXT PRIMARY KEY, customer INTEGER REFERENCES customers(id), '
    '"my col" DOUBLE, placed TIMESTAMP)',
    "CREATE TABLE lines (code TEXT REFERENCES \"order\"(code), line INTEGER, qty INTEGER, "
    "PRIMARY KEY (code, line))",
    "CREATE TABLE returns (code TEXT, line INTEGER, reason TEXT, "
    "FOREIGN KEY (code, line) REFERENCES lines(code, line))",
    'CREATE TABLE "my.table" (cust INTEGER, note TEXT)',
]
N_CUSTOMERS, N_ORDERS = 20, 200


def rows(dangling: bool) -> dict[str, list[tuple]]:
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2023-01-01")
    # customers signed up in reverse id order: sorting by time must renumber them
    customers = [
        (i + 1, f"Kunde Nr. {i}", str((start - pd.Timedelta(days=i)).date()))
        for i in range(N_CUSTOMERS)
    ]
    orders = [
        (f"o{i:03d}", int(rng.integers(1, N_CUSTOMERS + 1)), float(i) / 2,
         str(start + pd.Timedelta(days=int(d))))
        for i, d in enumerate(np.sort(rng.integers(0, 365, N_ORDERS)))
    ]
    if dangling:
        orders[5] = (orders[5][0], 999, orders[5][2], orders[5][3])
    lines = [(code, line, line + 1) for code, *_ in orders for line in (1, 2)]
    returns = [(lines[i][0], lines[i][1], "broken") for i in range(0, len(lines), 13)]
    notes = [(1 + i % N_CUSTOMERS, f"note {i}") for i in range(30)]
    return {"customers": customers, '"order"': orders, "lines": lines, "returns": returns,
            '"my.table"': notes}


def make_sqlite(path: Path) -> Path:
    con = sqlite3.connect(path)
    for stmt in DDL:
        con.execute(stmt)
    for table, values in rows(dangling=True).items():
        marks = ", ".join("?" * len(values[0]))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    con.commit()
    con.close()
    return path


def make_duckdb(path: Path) -> Path:
    con = duckdb.connect(str(path))
    for stmt in DDL:
        con.execute(stmt)
    for table, values in rows(dangling=False).items():
        con.register("src", pd.DataFrame(values))  # executemany is slow in DuckDB
        con.execute(f"INSERT INTO {table} SELECT * FROM src")
        con.unregister("src")
    con.close()
    return path


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_import_with_constraints_and_override(kind: str, tmp_path: Path) -> None:
    src = (make_sqlite if kind == "sqlite" else make_duckdb)(tmp_path / "shop.db")
    out = import_database(src, "shop", tmp_path / "data", fkeys=['"my.table".cust=customers'])
    assert out == tmp_path / "data" / "shop"
    manifest = read_manifest(out)
    specs = manifest.tables
    assert set(specs) == {"customers", "order", "lines", "returns", "my.table"}
    assert (specs["customers"].pkey, specs["customers"].time_col) == ("customers_id", "signup")
    assert (specs["order"].pkey, specs["order"].time_col) == ("order_id", "placed")
    assert specs["order"].fkeys == {"customers_id": "customers"}
    assert (specs["lines"].pkey, specs["lines"].fkeys) == ("lines_id", {"order_id": "order"})
    assert (specs["returns"].pkey, specs["returns"].fkeys) == (None, {"lines_id": "lines"})
    assert specs["my.table"].fkeys == {"customers_id": "customers"}
    # default splits: 70% / 85% quantiles of all timestamps, inside the data's range
    val, test = pd.Timestamp(manifest.val_timestamp), pd.Timestamp(manifest.test_timestamp)
    assert pd.Timestamp("2023-06-01") < val < test < pd.Timestamp("2024-01-01")

    db = load_dataset(out).get_db(upto_test_timestamp=False).table_dict
    source = rows(dangling=kind == "sqlite")
    assert [len(db[t.strip('"')].df) for t in source] == [len(v) for v in source.values()]
    cust, order, lines, returns = (db[t].df for t in ("customers", "order", "lines", "returns"))
    assert cust["signup"].is_monotonic_increasing and cust["id"].tolist()[0] == N_CUSTOMERS
    assert {"full name", "my col"} <= set(cust.columns) | set(order.columns)
    # every rewritten foreign key points at the row holding the natural key
    ok = order["customers_id"].notna()
    parent_ids = cust["id"].to_numpy()[order.loc[ok, "customers_id"].astype(int)]
    assert (parent_ids == order.loc[ok, "customer"]).all()
    assert int((~ok).sum()) == (1 if kind == "sqlite" else 0)
    assert (order["code"].to_numpy()[lines["order_id"].astype(int)] == lines["code"]).all()
    target = lines.iloc[returns["lines_id"].astype(int)]
    assert (target["code"].to_numpy() == returns["code"]).all()
    assert (target["line"].to_numpy() == returns["line"]).all()
    notes = db["my.table"].df
    assert (cust["id"].to_numpy()[notes["customers_id"].astype(int)] == notes["cust"]).all()


def test_add_task_from_sql(tmp_path: Path) -> None:
    out = import_database(make_sqlite(tmp_path / "shop.sqlite"), "shop", tmp_path)
    sql = tmp_path / "label.sql"
    sql.write_text(
        'SELECT t.timestamp, c."customers_id", COUNT(o.code) AS "n orders"\n'
        'FROM timestamps t CROSS JOIN customers c\n'
        'LEFT JOIN "order" o ON o."customers_id" = c."customers_id"\n'
        "  AND o.placed > t.timestamp AND o.placed <= t.timestamp + INTERVAL '{timedelta}'\n"
        "WHERE c.signup <= t.timestamp GROUP BY 1, 2\n"
    )
    task_dir = add_task_from_sql(out, "orders next week", sql, "regression", "customers",
                                 "customers_id", "n orders", "7 days")
    task = load_dataset(out).load_task("orders next week")
    sizes = {}
    for split in ("train", "val", "test"):
        df = pd.read_parquet(task_dir / f"{split}.parquet")
        sizes[split] = len(df)
        assert (df["n orders"] >= 0).all() and df["customers_id"].between(0, N_CUSTOMERS - 1).all()
        assert len(task.get_table(split, mask_input_cols=False).df) == len(df)
    assert min(sizes.values()) > 0 and sizes["train"] > sizes["test"]


def test_mixed_type_sqlite_column(tmp_path: Path) -> None:
    path = tmp_path / "mixed.sqlite"
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "select" (id INTEGER PRIMARY KEY, "the value" NUMERIC)')
    con.executemany('INSERT INTO "select" VALUES (?, ?)', [(1, 10), (2, "ten"), (3, 30), (4, None)])
    con.commit()
    con.close()
    with pytest.raises(DatasetError, match="mixes value types") as err:
        import_database(path, "mixed", tmp_path / "data")
    assert (err.value.table, err.value.column) == ("select", "the value")
    assert err.value.rows == [{"id": 2, "the value": "ten"}]
    assert "table 'select', column 'the value'" in str(err.value)


def test_bad_dates_and_unknown_files(tmp_path: Path) -> None:
    path = tmp_path / "dates.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATE)")
    con.executemany("INSERT INTO ev VALUES (?, ?)", [(1, "2020-01-01"), (2, "soon")])
    con.commit()
    con.close()
    with pytest.raises(DatasetError, match="not dates") as err:
        import_database(path, "dates", tmp_path / "data")
    assert (err.value.table, err.value.column, err.value.rows) == ("ev", "at", ["soon"])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all")
    with pytest.raises(DatasetError, match="neither"):
        import_database(junk, "junk", tmp_path / "data")


def test_parse_fkey_forms() -> None:
    cols = {"a.b": ["c", "d.e"], "a": ["b.c"], "p": ["id"], "my.parent": ["k"]}
    assert parse_fkey('"a.b".c=p', cols) == ForeignKey("a.b", ("c",), "p")
    assert parse_fkey('"a.b"."d.e"="my.parent"', cols) == ForeignKey("a.b", ("d.e",), "my.parent")
    assert parse_fkey("a.b.d.e=my.parent.k", cols) == ForeignKey("a.b", ("d.e",), "my.parent", ("k",))
    with pytest.raises(DatasetError, match="ambiguous"):
        parse_fkey("a.b.c=p", cols)  # table "a.b" col "c", or table "a" col "b.c"
    with pytest.raises(DatasetError, match="names no table"):
        parse_fkey("x.y=p", cols)
    with pytest.raises(DatasetError, match="child.col=parent"):
        parse_fkey("a.b.c", cols)
