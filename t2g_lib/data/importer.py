"""Import a DuckDB or SQLite database file into the RelBench local format.

The declared PRIMARY KEY and FOREIGN KEY constraints become the key graph (plus
``--fkey child.col=parent`` overrides for databases that never declared theirs), keys are
replaced by surrogate integers (:mod:`t2g_lib.data.keys`), and the first date column of
each table (declared DATE/TIMESTAMP, or text holding ISO dates) becomes its time column. Everything downstream then reads only the
written folder.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import duckdb
import pandas as pd
from relbench.manifest import KIND_FORECAST, TaskManifest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import (
    TimestampLike,
    check_name,
    check_time_col_name,
    parse_times,
    write_dataset,
    write_task,
)
from t2g_lib.data.keys import ForeignKey, assign_surrogate_keys
from t2g_lib.data.sql import quote_ident

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of a DuckDB database file
VAL_QUANTILE, TEST_QUANTILE = 0.70, 0.85


@dataclass
class SourceTable:
    """One table read from the source file, with its declared keys."""

    name: str
    df: pd.DataFrame
    pkey: tuple[str, ...] = ()
    fkeys: list[ForeignKey] = field(default_factory=list)
    date_cols: list[str] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """``"sqlite"`` or ``"duckdb"``, from the file header (extensions lie: both use .db)."""
    if not path.is_file():
        raise DatasetError(f"database file {str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head[8:12] == DUCKDB_MAGIC:
        return "duckdb"
    raise DatasetError(f"{str(path)!r} is neither a SQLite nor a DuckDB database file")


def _examples(con: sqlite3.Connection, table: str, where: str) -> list[dict]:
    cur = con.execute(f"SELECT * FROM {quote_ident(table)} WHERE {where} LIMIT 5")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _storage_group(kind: str) -> str:
    return "numeric" if kind in ("integer", "real") else kind


def to_timestamps(table: str, col: str, values: pd.Series) -> pd.Series:
    """Parse a column into tz-naive timestamps (numbers are Unix seconds, text is any
    date format pandas reads; offsets are converted to UTC), refusing unparsable values."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, unit="s", errors="coerce")
    else:
        parsed = parse_times(values)
    bad = parsed.isna() & values.notna()
    if bad.any():
        raise DatasetError(
            f"{int(bad.sum())} values are not dates", table=table, column=col,
            rows=values[bad].head(5).tolist(),
        )
    return parsed


_ISO_DATE = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"


def is_iso_text(values: pd.Series) -> bool:
    """True for a text column whose every value is an ISO date or date-time (how SQLite,
    CSV and many exports store times): such a column is a date column."""
    text = values.dropna()
    if text.empty or not all(isinstance(v, str) for v in text):
        return False
    return bool(text.str.fullmatch(_ISO_DATE).all())


def parse_time_col_specs(specs: Sequence[str]) -> dict[str, Optional[str]]:
    """``["orders.placed", "customers.-"]`` -> ``{"orders": "placed", "customers": None}``."""
    out: dict[str, Optional[str]] = {}
    for spec in specs:
        table, dot, col = spec.rpartition(".")
        if not dot or not table or not col:
            raise DatasetError(f"time column {spec!r} is not TABLE.COL (or TABLE.- for none)")
        out[table] = None if col == "-" else col
    return out


def _sqlite_column(
    con: sqlite3.Connection, table: str, col: str, values: pd.Series, declared: str
) -> pd.Series:
    """Type one SQLite column from the storage classes it really holds (SQLite lets a
    column mix them); a column mixing numbers, text and blobs is refused."""
    q = quote_ident(col)
    kinds = dict(
        con.execute(
            f"SELECT typeof({q}), count(*) FROM {quote_ident(table)} GROUP BY 1"
        ).fetchall()
    )
    kinds.pop("null", None)
    counts: dict[str, int] = {}
    for kind, n in kinds.items():
        counts[_storage_group(kind)] = counts.get(_storage_group(kind), 0) + n
    if len(counts) > 1:
        minority = min(counts, key=counts.get)
        storage = [k for k in kinds if _storage_group(k) == minority]
        in_list = ", ".join(f"'{k}'" for k in storage)
        raise DatasetError(
            f"column mixes value types {sorted(counts.items())}; the rows holding the "
            f"rarer {minority!r} values must be fixed or cast",
            table=table,
            column=col,
            rows=_examples(con, table, f"typeof({q}) IN ({in_list})"),
        )
    if set(kinds) == {"integer"}:
        values = values.astype("Int64")
    elif "real" in kinds:
        values = values.astype("float64")
    decl = declared.upper()
    if "DATE" in decl or "TIMESTAMP" in decl or (set(kinds) == {"text"} and is_iso_text(values)):
        return to_timestamps(table, col, values)
    return values


def read_sqlite(path: Path) -> list[SourceTable]:
    """Tables, declared keys and DATE/TIMESTAMP columns of a SQLite file (read-only)."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
            )
        ]
        by_lower = {n.lower(): n for n in names}  # SQLite resolves names case-insensitively
        out = []
        for name in names:
            info = con.execute(
                "SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", (name,)
            ).fetchall()
            rows = con.execute(f"SELECT * FROM {quote_ident(name)}").fetchall()
            data = list(zip(*rows)) if rows else [()] * len(info)
            df = pd.DataFrame(
                {
                    col: _sqlite_column(
                        con, name, col, pd.Series(list(values), dtype=object), declared or ""
                    )
                    for (col, declared, _), values in zip(info, data)
                }
            )
            pkey = tuple(c for c, _, pk in sorted(info, key=lambda r: r[2]) if pk > 0)
            fk_rows = con.execute(
                'SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?) '
                "ORDER BY id, seq",
                (name,),
            ).fetchall()
            groups: dict[int, list[tuple]] = {}
            for fid, parent, frm, to in fk_rows:
                groups.setdefault(fid, []).append((by_lower.get(parent.lower(), parent), frm, to))
            fkeys = [
                ForeignKey(
                    name,
                    tuple(frm for _, frm, _ in rows),
                    rows[0][0],
                    None if rows[0][2] is None else tuple(to for _, _, to in rows),
                )
                for rows in groups.values()
            ]
            dates = [c for c, d, _ in info if pd.api.types.is_datetime64_any_dtype(df[c])]
            out.append(SourceTable(name, df, pkey, fkeys, dates))
        return out
    finally:
        con.close()


def read_duckdb(path: Path) -> list[SourceTable]:
    """Tables, declared keys and DATE/TIMESTAMP columns of a DuckDB file (read-only).

    Tables outside the ``main`` schema are named ``<schema>.<table>``.
    """
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
            "ORDER BY schema_name <> 'main', schema_name, table_name"
        ).fetchall()
        full = {(s, t): t if s == "main" else f"{s}.{t}" for s, t in rows}
        if len(set(full.values())) != len(full):
            raise DatasetError("table names collide once schemas are folded in")
        constraints = con.execute(
            "SELECT schema_name, table_name, constraint_type, constraint_column_names, "
            "referenced_table, referenced_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() "
            "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') "
            "ORDER BY schema_name, table_name, constraint_index"
        ).fetchall()
        out = []
        for (schema, table), name in full.items():
            df = con.execute(
                f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)}"
            ).df()
            for col in df.columns:
                if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                    df[col] = df[col].dt.tz_convert(None)
                elif df[col].dtype == object and is_iso_text(df[col]):
                    df[col] = to_timestamps(name, col, df[col])
            src = SourceTable(name, df)
            for s, t, kind, cols, ref_table, ref_cols in constraints:
                if (s, t) != (schema, table):
                    continue
                if kind == "PRIMARY KEY":
                    src.pkey = tuple(cols)
                else:
                    parent = full[(s, ref_table)]
                    src.fkeys.append(ForeignKey(name, tuple(cols), parent, tuple(ref_cols)))
            src.date_cols = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
            out.append(src)
        return out
    finally:
        con.close()


def split_identifiers(text: str) -> list[str]:
    """Split ``a."b.c".d`` on the dots outside double quotes, unquoting each part."""
    parts, cur, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and text[i + 1 : i + 2] == '"':
                cur.append('"')
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if quoted:
        raise DatasetError(f"unbalanced double quote in {text!r}")
    parts.append("".join(cur))
    return parts


def _outside_quotes_index(text: str, ch: str) -> int:
    quoted = False
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            return i
    return -1


def _resolve(parts: list[str], columns: Mapping[str, Iterable[str]], spec: str) -> tuple[str, str]:
    """The one (table, column) reading of dotted ``parts`` that names a real column."""
    found = [
        (".".join(parts[:i]), ".".join(parts[i:]))
        for i in range(1, len(parts))
        if ".".join(parts[:i]) in columns and ".".join(parts[i:]) in columns[".".join(parts[:i])]
    ]
    if len(found) != 1:
        what = "is ambiguous" if found else "names no table.column"
        raise DatasetError(f"--fkey {spec!r}: {'.'.join(parts)!r} {what}; quote names with dots")
    return found[0]


def parse_fkey(spec: str, columns: Mapping[str, Iterable[str]]) -> ForeignKey:
    """Parse ``child.col=parent`` (or ``=parent.col``) against the source's tables.

    Names may contain dots: quote them (``"my.table".col=parent``), or leave them bare when
    only one split names a real table and column.
    """
    eq = _outside_quotes_index(spec, "=")
    if eq < 0:
        raise DatasetError(f"--fkey {spec!r} must look like child.col=parent")
    table, col = _resolve(split_identifiers(spec[:eq].strip()), columns, spec)
    right = split_identifiers(spec[eq + 1 :].strip())
    if ".".join(right) in columns:
        return ForeignKey(table, (col,), ".".join(right))
    parent, parent_col = _resolve(right, columns, spec)
    return ForeignKey(table, (col,), parent, (parent_col,))


def _apply_overrides(tables: list[SourceTable], specs: Sequence[str]) -> None:
    by_name = {t.name: t for t in tables}
    columns = {t.name: list(t.df.columns) for t in tables}
    for spec in specs:
        fk = parse_fkey(spec, columns)
        parent = by_name[fk.parent]
        if fk.parent_columns is None and len(parent.pkey) != 1:
            raise DatasetError(
                f"--fkey {spec!r}: {fk.parent!r} has no single-column primary key; "
                "name the referenced column as parent.col",
                table=fk.table,
                column=fk.columns[0],
            )
        child = by_name[fk.table]
        child.fkeys = [f for f in child.fkeys if f.columns != fk.columns] + [fk]


def _time_cols(
    tables: list[SourceTable], given: Optional[Mapping[str, Optional[str]]]
) -> dict[str, str]:
    given = dict(given or {})
    by_name = {t.name: t for t in tables}
    for table, col in given.items():
        if table not in by_name:
            raise DatasetError("time column given for an unknown table", table=table, column=col)
        if col is not None:
            if col not in by_name[table].df.columns:
                raise DatasetError("time column is not in the table", table=table, column=col)
            check_time_col_name(table, col)
            df = by_name[table].df
            df[col] = to_timestamps(table, col, df[col])
    out: dict[str, str] = {}
    for t in tables:
        if t.name in given:
            if given[t.name] is not None:
                out[t.name] = given[t.name]
            continue
        for col in t.date_cols:
            try:
                check_time_col_name(t.name, col)
            except DatasetError:
                log.info("%s.%s: not usable as a relbench time column name, skipped", t.name, col)
                continue
            out[t.name] = col
            break
    return out


def _default_splits(
    tables: Mapping[str, pd.DataFrame], time_cols: Mapping[str, str]
) -> tuple[pd.Timestamp, pd.Timestamp]:
    stamps = pd.concat(
        [tables[t][c].dropna().astype("datetime64[ns]") for t, c in time_cols.items()],
        ignore_index=True,
    ) if time_cols else pd.Series([], dtype="datetime64[ns]")
    if stamps.empty:
        raise DatasetError(
            "no date column to derive val/test split times from: pass --val-timestamp and "
            "--test-timestamp, or name a time column with --time-col TABLE.COL"
        )
    return stamps.quantile(VAL_QUANTILE), stamps.quantile(TEST_QUANTILE)


def import_database(
    source: Path,
    name: str,
    out_dir: Path,
    fkeys: Sequence[str] = (),
    val_timestamp: Optional[TimestampLike] = None,
    test_timestamp: Optional[TimestampLike] = None,
    time_cols: Optional[Mapping[str, Optional[str]]] = None,
) -> Path:
    """Convert a DuckDB/SQLite file into a RelBench dataset folder ``out_dir/name``.

    ``fkeys`` are ``child.col=parent`` overrides added to (or replacing) the declared
    constraints; ``time_cols`` maps a table to its time column (``None``: no time column),
    default the first DATE/TIMESTAMP column. Split times default to the 70% and 85%
    quantiles of all timestamps, so the latest data is held out.
    """
    source = Path(source)
    check_name(name, "dataset")
    kind = detect_format(source)
    tables = read_sqlite(source) if kind == "sqlite" else read_duckdb(source)
    _apply_overrides(tables, fkeys)
    times = _time_cols(tables, time_cols)
    frames = {t.name: t.df for t in tables}
    default_val, default_test = (
        _default_splits(frames, times)
        if val_timestamp is None or test_timestamp is None
        else (None, None)
    )
    keyed = assign_surrogate_keys(
        frames,
        {t.name: t.pkey for t in tables if t.pkey},
        [fk for t in tables for fk in t.fkeys],
        time_cols=times,
    )
    for (table, col), n in keyed.dangling.items():
        if n:
            log.warning("%s.%s: %d foreign keys match no parent row (stored as NA)", table, col, n)
    return write_dataset(
        Path(out_dir) / name,
        name,
        keyed.tables,
        keyed.specs,
        val_timestamp=default_val if val_timestamp is None else val_timestamp,
        test_timestamp=default_test if test_timestamp is None else test_timestamp,
        description=f"imported from {source.name} ({kind})",
    )


def add_task_from_sql(
    dataset_path: Path,
    name: str,
    sql_file: Path,
    task_type: str,
    entity_table: str,
    entity_col: str,
    target_col: str,
    timedelta: str,
    time_col: str = "timestamp",
) -> Path:
    """Add a forecast task whose labels a DuckDB query computes (relbench semantics).

    The query sees ``timestamps(timestamp)`` and every table by name (quote them), with
    ``{timedelta}`` substituted; labels are generated and stored by :func:`write_task`.
    """
    tm = TaskManifest(
        name=name,
        kind=KIND_FORECAST,
        task_type=task_type,
        entity_table=entity_table,
        entity_col=entity_col,
        target_col=target_col,
        time_col=time_col,
        timedelta=timedelta,
        sql=Path(sql_file).read_text(),
    )
    return write_task(dataset_path, tm)
