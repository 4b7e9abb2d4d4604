"""The RelBench folder format: round trips through relbench, and every bad input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from relbench.manifest import TableSpec, TaskManifest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import (
    load_dataset,
    read_manifest,
    read_tables,
    table_file_name,
    validate_dataset_folder,
    write_dataset,
    write_task,
)
from t2g_lib.data.keys import ForeignKey, assign_surrogate_keys
from t2g_lib.data.sql import quote_ident

# Names that break naive code: SQL keywords, spaces, dots, non-ASCII, a quote.
USERS, ORDERS, ITEMS = "select", "order", "keys.v2 Ärger"


def weird_tables() -> tuple[dict[str, pd.DataFrame], dict[str, TableSpec]]:
    users = pd.DataFrame({"user name": [f"u{i}" for i in range(6)], "ägé": np.arange(6) * 10})
    items = pd.DataFrame({"sku": ["a", "b", "c"], 'pri"ce': [1.5, 2.0, 3.25]})
    days = pd.to_datetime("2024-01-01") + pd.to_timedelta(np.arange(40) * 9, unit="D")
    orders = pd.DataFrame(
        {
            "buyer": [f"u{i % 6}" for i in range(40)],
            "sku": ["abc"[i % 3] for i in range(40)],
            "when": days[::-1],  # written in reverse: keys must sort it first
            "update": np.arange(40),
        }
    )
    keyed = assign_surrogate_keys(
        {USERS: users, ITEMS: items, ORDERS: orders},
        {USERS: ["user name"], ITEMS: ["sku"]},
        [ForeignKey(ORDERS, ("buyer",), USERS), ForeignKey(ORDERS, ("sku",), ITEMS)],
        time_cols={ORDERS: "when"},
    )
    return keyed.tables, keyed.specs


def weird_dataset(path: Path) -> Path:
    tables, specs = weird_tables()
    return write_dataset(path, "weird", tables, specs, "2024-06-01", "2024-08-01")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return weird_dataset(tmp_path / "weird")


def test_round_trip_through_relbench(dataset: Path) -> None:
    tables, specs = weird_tables()
    assert sorted(p.name for p in (dataset / "db").iterdir()) == sorted(
        table_file_name(t) for t in tables
    )
    ds = load_dataset(dataset)
    db = ds.get_db(upto_test_timestamp=False)
    assert set(db.table_dict) == set(tables)
    for name, df in tables.items():
        table = db.table_dict[name]
        assert table.pkey_col == specs[name].pkey
        assert table.time_col == specs[name].time_col
        assert table.fkey_col_to_pkey_table == specs[name].fkeys
        pd.testing.assert_frame_equal(table.df, df, check_dtype=False)
    # upto keeps a prefix, so relbench's 0..n-1 check passes at the test timestamp too
    assert len(ds.get_db().table_dict[ORDERS]) < len(tables[ORDERS])
    raw = read_tables(dataset)
    assert raw[ORDERS]["when"].is_monotonic_increasing
    assert len(raw[ORDERS]) == 40


def test_task_over_weird_names(dataset: Path) -> None:
    spec = read_manifest(dataset).tables
    uid = spec[USERS].pkey
    fk = next(c for c, p in spec[ORDERS].fkeys.items() if p == USERS)
    q = quote_ident
    sql = f"""
        SELECT t.timestamp, u.{q(uid)}, COUNT(o.{q(fk)}) AS {q("n orders")}
        FROM timestamps t CROSS JOIN {q(USERS)} u
        LEFT JOIN {q(ORDERS)} o ON o.{q(fk)} = u.{q(uid)}
          AND o.{q("when")} > t.timestamp AND o.{q("when")} <= t.timestamp + INTERVAL '{{timedelta}}'
        GROUP BY 1, 2
    """
    tm = TaskManifest(
        name="n orders", kind="forecast", task_type="regression", entity_table=USERS,
        entity_col=uid, target_col="n orders", time_col="timestamp", timedelta="30 days", sql=sql,
    )
    task_dir = write_task(dataset, tm)
    assert task_dir == dataset.resolve() / "tasks" / "n orders"
    task = load_dataset(dataset).load_task("n orders")
    for split in ("train", "val", "test"):
        stored = task.get_table(split, mask_input_cols=False).df
        assert len(stored) and (stored["n orders"] >= 0).all()
    assert list(pd.read_parquet(task_dir / "test.parquet").columns) == ["timestamp", uid, "n orders"]


def test_table_file_name() -> None:
    assert table_file_name("order") == "order.parquet"
    assert table_file_name("a b.c Ä") == "a b.c Ä.parquet"
    for bad in ("a/b", "", ".", "..", "x\x00"):
        with pytest.raises(DatasetError):
            table_file_name(bad)


def test_slash_in_table_name_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'a/b'") as err:
        write_dataset(tmp_path / "d", "d", {"a/b": pd.DataFrame({"x": [1]})},
                      {"a/b": TableSpec()}, "2020-01-01", "2021-01-01")
    assert err.value.table == "a/b"


def test_missing_folder_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        validate_dataset_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="manifest.yaml"):
        load_dataset(tmp_path / "empty")


def test_missing_parquet(dataset: Path) -> None:
    (dataset / "db" / table_file_name(ITEMS)).unlink()
    with pytest.raises(DatasetError, match="missing") as err:
        validate_dataset_folder(dataset)
    assert err.value.table == ITEMS
    assert repr(ITEMS) in str(err.value)


def _edit_manifest(dataset: Path, edit) -> None:
    path = dataset / "manifest.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))


def test_unknown_fkey_table(dataset: Path) -> None:
    fk = next(iter(read_manifest(dataset).tables[ORDERS].fkeys))
    _edit_manifest(dataset, lambda d: d["tables"][ORDERS]["fkeys"].update({fk: "ghost"}))
    with pytest.raises(DatasetError, match="unknown table 'ghost'") as err:
        validate_dataset_folder(dataset)
    assert (err.value.table, err.value.column) == (ORDERS, fk)
    assert f"table {ORDERS!r}, column {fk!r}" in str(err.value)


def test_fkey_column_not_in_parquet(dataset: Path) -> None:
    _edit_manifest(dataset, lambda d: d["tables"][ORDERS]["fkeys"].update({"my col": USERS}))
    with pytest.raises(DatasetError, match="not in the parquet") as err:
        validate_dataset_folder(dataset)
    assert (err.value.table, err.value.column) == (ORDERS, "my col")
    assert "column 'my col'" in str(err.value)


def test_time_and_pkey_columns_not_in_parquet(dataset: Path) -> None:
    _edit_manifest(dataset, lambda d: d["tables"][ORDERS].update({"time_col": "gone"}))
    with pytest.raises(DatasetError) as err:
        validate_dataset_folder(dataset)
    assert (err.value.table, err.value.column) == (ORDERS, "gone")
    _edit_manifest(dataset, lambda d: d["tables"][ORDERS].update({"time_col": "when", "pkey": "pk"}))
    with pytest.raises(DatasetError) as err:
        validate_dataset_folder(dataset)
    assert (err.value.table, err.value.column) == (ORDERS, "pk")


def test_pkey_must_be_row_index(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": [1, 2, 3]})
    with pytest.raises(DatasetError, match="0..n-1") as err:
        write_dataset(tmp_path / "d", "d", {"t": df}, {"t": TableSpec(pkey="id")},
                      "2020-01-01", "2021-01-01")
    assert (err.value.table, err.value.column, err.value.rows) == ("t", "id", [0, 1, 2])


def test_fkey_out_of_range(tmp_path: Path) -> None:
    tables = {"p": pd.DataFrame({"id": [0, 1]}), "c": pd.DataFrame({"pid": [0, 5, None]})}
    specs = {"p": TableSpec(pkey="id"), "c": TableSpec(fkeys={"pid": "p"})}
    with pytest.raises(DatasetError, match="row indices") as err:
        write_dataset(tmp_path / "d", "d", tables, specs, "2020-01-01", "2021-01-01")
    assert (err.value.table, err.value.column, err.value.rows) == ("c", "pid", [1])


def test_time_column_checks(tmp_path: Path) -> None:
    # Text times (as SQLite and CSV exports store them) are accepted; numbers are not.
    text_time = {"t": pd.DataFrame({"day": ["2020-01-01", "2020-01-02 10:00:00"]})}
    write_dataset(tmp_path / "d", "d", text_time, {"t": TableSpec(time_col="day")}, "2020-01-01", "2021-01-01")
    assert validate_dataset_folder(tmp_path / "d").tables["t"].time_col == "day"
    number_time = {"t": pd.DataFrame({"day": [20200101]})}
    with pytest.raises(DatasetError, match="timestamp or text, not int64") as err:
        write_dataset(tmp_path / "d", "d", number_time, {"t": TableSpec(time_col="day")},
                      "2020-01-01", "2021-01-01")
    assert err.value.column == "day"
    # relbench's Table.upto runs DataFrame.query(f"{time_col} <= ..."): a space breaks it
    spaced = {"t": pd.DataFrame({"order date": pd.to_datetime(["2020-01-01"])})}
    with pytest.raises(DatasetError, match="query") as err:
        write_dataset(tmp_path / "d", "d", spaced, {"t": TableSpec(time_col="order date")},
                      "2020-01-01", "2021-01-01")
    assert (err.value.table, err.value.column) == ("t", "order date")


def test_task_with_unknown_entity_table(dataset: Path) -> None:
    tm = TaskManifest(name="t", kind="forecast", task_type="regression", entity_table="ghost",
                      entity_col="id", target_col="y", time_col="timestamp", timedelta="30 days",
                      sql="SELECT 1")
    with pytest.raises(DatasetError, match="entity table") as err:
        write_task(dataset, tm)
    assert (err.value.table, err.value.column) == ("ghost", "id")
    assert not (dataset / "tasks" / "t").exists()
    # a hand-written manifest with the same fault fails validation
    tm.save(dataset / "tasks" / "t" / "manifest.yaml")
    with pytest.raises(DatasetError, match="ghost"):
        validate_dataset_folder(dataset)


def test_failing_task_sql_keeps_previous_version(dataset: Path) -> None:
    uid = read_manifest(dataset).tables[USERS].pkey
    base = dict(kind="forecast", task_type="regression", entity_table=USERS, entity_col=uid,
                target_col="y", time_col="timestamp", timedelta="30 days")
    good = (
        f"SELECT t.timestamp, u.{quote_ident(uid)}, 1.0 AS y "
        f"FROM timestamps t, {quote_ident(USERS)} u"
    )
    task_dir = write_task(dataset, TaskManifest(name="t", sql=good, **base))
    before = (task_dir / "train.parquet").read_bytes()
    with pytest.raises(DatasetError, match="label generation failed") as err:
        write_task(dataset, TaskManifest(name="t", sql="SELECT * FROM nowhere", **base))
    assert err.value.table == USERS
    assert (task_dir / "train.parquet").read_bytes() == before
    assert [p.name for p in (dataset / "tasks").iterdir()] == ["t"]


def test_rewrite_replaces_db(dataset: Path) -> None:
    tables, specs = weird_tables()
    tables[USERS] = tables[USERS].assign(extra=1)
    write_dataset(dataset, "weird", tables, specs, "2024-06-01", "2024-08-01")
    assert "extra" in read_tables(dataset)[USERS].columns
    assert sorted(p.name for p in dataset.iterdir()) == ["db", "manifest.yaml"]


def test_split_order_checked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="before"):
        write_dataset(tmp_path / "d", "d", {"t": pd.DataFrame({"x": [1]})}, {"t": TableSpec()},
                      "2021-01-01", "2020-01-01")


def test_a_snapshot_of_some_columns_keeps_keys_and_times(dataset: Path) -> None:
    """The graph stages read a snapshot of keys and times only (``columns={}``), the aggregate
    features keys, times and the columns they name: those columns equal the whole snapshot's,
    nothing else is read, and a table with no column left is read whole."""
    import duckdb

    from t2g_lib.data.duck import read_database, write_tables

    tables, specs = weird_tables()
    tables["plain notes"] = pd.DataFrame({"note": ["a", "b"], "n": [1, 2]})
    specs["plain notes"] = TableSpec()
    manifest = read_manifest(dataset)
    manifest.tables["plain notes"] = specs["plain notes"]
    conn = duckdb.connect()
    write_tables(conn, "weird", tables)
    whole = read_database(conn, "weird", manifest)
    extra = {ORDERS: [c for c in tables[ORDERS].columns][-1:]}
    for columns in ({}, extra):
        some = read_database(conn, "weird", manifest, columns=columns)
        for name, spec in manifest.tables.items():
            kept = list(dict.fromkeys(c for c in (spec.pkey, *spec.fkeys, spec.time_col, *columns.get(name, []))
                                      if c is not None)) or list(tables[name].columns)
            assert list(some.table_dict[name].df.columns) == kept, name
            pd.testing.assert_frame_equal(some.table_dict[name].df, whole.table_dict[name].df[kept])
        assert list(some.table_dict[ORDERS].df.columns) != list(whole.table_dict[ORDERS].df.columns)


def test_tables_on_demand_are_the_snapshot_a_table_at_a_time(dataset: Path, tmp_path: Path) -> None:
    """``column_tokens`` reads the snapshot a table at a time: each table, read on its own
    connection when asked for, equals the whole snapshot's with the hidden columns dropped."""
    from contextlib import contextmanager

    import duckdb
    from relbench.base.dataset import drop_columns

    from t2g_lib.data.duck import TablesOnDemand, read_database, write_tables

    tables, _ = weird_tables()
    manifest = read_manifest(dataset)
    path = str(tmp_path / "snap.duckdb")
    with duckdb.connect(path) as conn:
        write_tables(conn, "weird", tables)
        hidden = [(ORDERS, "update")]
        whole = drop_columns(read_database(conn, "weird", manifest), hidden)
    opened = []

    @contextmanager
    def connect():
        opened.append(1)
        with duckdb.connect(path) as conn:
            yield conn

    lazy = TablesOnDemand(connect, "weird", manifest, hidden)
    assert list(lazy) == list(manifest.tables) and not opened  # nothing read until asked for
    for name in lazy:
        table = lazy[name]
        pd.testing.assert_frame_equal(table.df, whole.table_dict[name].df)
        assert (table.pkey_col, table.time_col, table.fkey_col_to_pkey_table) == (
            whole.table_dict[name].pkey_col, whole.table_dict[name].time_col, whole.table_dict[name].fkey_col_to_pkey_table)
    assert "update" not in lazy[ORDERS].df.columns and len(opened) == len(manifest.tables) + 1
