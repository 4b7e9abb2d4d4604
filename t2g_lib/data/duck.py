"""A database's tables in DuckDB: one schema per database, every identifier quoted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager

import duckdb
import pandas as pd
import pyarrow as pa
from relbench.base import Database, Table
from relbench.manifest import DatasetManifest, TableSpec

from t2g_lib.data.format import parse_time_columns, plain_strings
from t2g_lib.data.sql import quote_ident


def schema_name(database: str) -> str:
    """The DuckDB schema holding ``database``'s tables (prefixed so it never hits ``main``)."""
    return f"db_{database}"


def write_tables(
    conn: duckdb.DuckDBPyConnection, database: str, tables: Mapping[str, pd.DataFrame | pa.Table]
) -> None:
    """Replace the schema's tables in one transaction, so a failed load leaves the old ones."""
    schema = quote_ident(schema_name(database))
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, df in tables.items():
            conn.register("_t2g_frame", df)
            conn.execute(f"CREATE OR REPLACE TABLE {schema}.{quote_ident(name)} AS SELECT * FROM _t2g_frame")
            conn.unregister("_t2g_frame")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


def read_tables(
    conn: duckdb.DuckDBPyConnection, database: str, names: list[str], columns: Mapping[str, list[str]] | None = None
) -> dict[str, pd.DataFrame]:
    """Tables as frames: every column, or only ``columns[name]`` for the tables it names."""
    schema = quote_ident(schema_name(database))

    def select(n: str) -> str:
        return "*" if columns is None or n not in columns else ", ".join(quote_ident(c) for c in columns[n])

    return {n: conn.execute(f"SELECT {select(n)} FROM {schema}.{quote_ident(n)}").df() for n in names}


def read_database(
    conn: duckdb.DuckDBPyConnection,
    database: str,
    manifest: DatasetManifest,
    parse_time_cols: bool = True,
    columns: Mapping[str, Iterable[str]] | None = None,
) -> Database:
    """The relbench ``Database`` as ``raw_tables`` stored it (the validated snapshot).

    Time columns stored as text are parsed into datetimes (``format.parse_times``) unless
    ``parse_time_cols`` is False: validation reads them raw, to name the rows that do not parse.
    With ``columns``, each table keeps its primary key, foreign keys and time column and only
    the other columns that ``columns`` names for it: the graph stages read keys and times
    only (``{}``), the aggregate features their numbers, without the rest (on a large
    database most of its memory is text and category strings).
    """
    selected = None
    if columns is not None:  # a table with no column left is read whole: its rows still count
        keep = {name: [c for c in dict.fromkeys([spec.pkey, *spec.fkeys, spec.time_col, *columns.get(name, ())])
                       if c is not None] for name, spec in manifest.tables.items()}
        selected = {name: cols for name, cols in keep.items() if cols}
    frames = read_tables(conn, database, list(manifest.tables), selected)
    db = Database({name: _table(frames[name], spec) for name, spec in manifest.tables.items()})
    return parse_time_columns(db) if parse_time_cols else db


def _table(df: pd.DataFrame, spec: TableSpec) -> Table:
    """A stored frame as the relbench ``Table`` its manifest entry describes."""
    return Table(df=df, fkey_col_to_pkey_table=dict(spec.fkeys), pkey_col=spec.pkey, time_col=spec.time_col)


def _labels_of(database: str) -> str:
    """The pseudo-database whose schema holds ``database``'s label tables."""
    return f"{database}__labels"


def write_labels(
    conn: duckdb.DuckDBPyConnection, database: str, tasks: Mapping[str, Mapping[str, pd.DataFrame]]
) -> None:
    """Snapshot every task's label tables (``task -> split -> frame``) beside the tables."""
    write_tables(conn, _labels_of(database), {
        f"{task}/{split}": plain_strings(df) for task, splits in tasks.items() for split, df in splits.items()
    })


def read_labels(conn: duckdb.DuckDBPyConnection, database: str, task: str, splits: list[str]) -> dict[str, pd.DataFrame]:
    """One task's label tables as ``write_labels`` stored them."""
    frames = read_tables(conn, _labels_of(database), [f"{task}/{s}" for s in splits])
    return {s: frames[f"{task}/{s}"] for s in splits}


class TablesOnDemand(Mapping[str, Table]):
    """A snapshot's tables (text times parsed, ``hidden`` columns dropped) read from DuckDB
    when asked for, on a connection of their own, and never held.

    As a ``Database``'s ``table_dict`` it lets a stage that visits the tables in turn
    (``tokens.tokenize_database``) hold one table's rows at a time, not the whole database's,
    and keeps DuckDB's file lock only while a table is read.
    """

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
        database: str,
        manifest: DatasetManifest,
        hidden: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.connect, self.database, self.manifest = connect, database, manifest
        self.hidden = sorted(set(map(tuple, hidden)))

    def __getitem__(self, name: str) -> Table:
        spec = self.manifest.tables[name]
        with self.connect() as conn:
            df = read_tables(conn, self.database, [name])[name]
        df = df.drop(columns=[c for t, c in self.hidden if t == name and c in df.columns])
        return parse_time_columns(Database({name: _table(df, spec)})).table_dict[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.manifest.tables)

    def __len__(self) -> int:
        return len(self.manifest.tables)
