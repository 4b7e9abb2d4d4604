"""Surrogate integer keys: RelBench wants every primary key to be 0..n-1 in row order.

Real databases key rows by strings (``playerID``) or by several columns (a team is
``(yearID, teamID)``). This module adds one integer surrogate primary key per keyed table
and rewrites every foreign key, composite ones included, into those integers with
vectorized merges. The natural key columns stay in the table as ordinary data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from relbench.manifest import TableSpec

from t2g_lib.data.errors import DatasetError


@dataclass(frozen=True)
class ForeignKey:
    """``table.columns`` references ``parent``.

    The columns are matched position by position to ``parent_columns``, which default to
    the parent's natural primary key. ``name`` is the surrogate foreign key column to
    create; by default ``<parent>_id``, or ``<parent>_id_by_<columns>`` when the table has
    several foreign keys to the same parent or references itself.
    """

    table: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: Optional[tuple[str, ...]] = None
    name: Optional[str] = None


@dataclass
class KeyedTables:
    """Tables with surrogate keys, their RelBench specs and the foreign-key integrity report.

    ``dangling[(table, fkey_col)]`` counts rows whose natural foreign key is fully present
    but matches no parent row; ``missing[(table, fkey_col)]`` counts rows whose natural key
    has a null part. Both end up as NA in the surrogate column.
    """

    tables: dict[str, pd.DataFrame]
    specs: dict[str, TableSpec]
    dangling: dict[tuple[str, str], int]
    missing: dict[tuple[str, str], int]


def unique_column_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... -- the first one not in ``taken``."""
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _examples(df: pd.DataFrame, mask: "pd.Series[bool]") -> list[dict]:
    return df.loc[mask].head(5).to_dict("records")


def _check_columns(tables: Mapping[str, pd.DataFrame], table: str, cols: Sequence[str]) -> None:
    if table not in tables:
        raise DatasetError("unknown table", table=table)
    for col in cols:
        if col not in tables[table].columns:
            raise DatasetError("column not in table", table=table, column=col)


def _default_fkey_names(fkeys: Sequence[ForeignKey]) -> list[str]:
    names = []
    for fk in fkeys:
        if fk.name is not None:
            names.append(fk.name)
            continue
        siblings = sum(1 for o in fkeys if o.table == fk.table and o.parent == fk.parent)
        if siblings > 1 or fk.parent == fk.table:
            names.append(f"{fk.parent}_id_by_{'_'.join(fk.columns)}")
        else:
            names.append(f"{fk.parent}_id")
    return names


def assign_surrogate_keys(
    tables: Mapping[str, pd.DataFrame],
    pkeys: Mapping[str, Sequence[str]],
    fkeys: Sequence[ForeignKey],
    time_cols: Optional[Mapping[str, str]] = None,
) -> KeyedTables:
    """Give keyed tables an integer primary key 0..n-1 and rewrite foreign keys to it.

    ``pkeys`` maps a table to its natural key columns (checked non-null and unique); every
    table named there or referenced by a foreign key gets a surrogate column ``<table>_id``
    (renamed if taken). Tables with a time column are first sorted by it (stable, missing
    times last), because RelBench's ``Database.upto`` must leave a prefix of 0..n-1.
    No row is dropped: unmatched or partly-null foreign keys become NA (nullable Int64).
    """
    time_cols = dict(time_cols or {})
    _check_references(tables, pkeys, fkeys, time_cols)
    out: dict[str, pd.DataFrame] = {}
    for table, df in tables.items():
        if table in time_cols:
            df = df.sort_values(time_cols[table], kind="stable", na_position="last")
        out[table] = df.reset_index(drop=True)
    keyed = [t for t in tables if pkeys.get(t)] + [fk.parent for fk in fkeys if not pkeys.get(fk.parent)]
    pkey_name = {table: _insert_surrogate(out, table, pkeys.get(table, ())) for table in dict.fromkeys(keyed)}
    specs = {t: TableSpec(pkey=pkey_name.get(t), time_col=time_cols.get(t), fkeys={}) for t in tables}
    dangling: dict[tuple[str, str], int] = {}
    missing: dict[tuple[str, str], int] = {}
    for fk, base in zip(fkeys, _default_fkey_names(fkeys)):
        parent_cols = list(fk.parent_columns or pkeys.get(fk.parent, ()))
        rows, null = _match_parent_rows(out, fk, parent_cols, pkey_name)
        child = out[fk.table]
        name = unique_column_name(base, set(child.columns))
        child.insert(int(fk.table in pkey_name) + len(specs[fk.table].fkeys), name,
                     pd.array(rows, dtype="Int64"))
        specs[fk.table].fkeys[name] = fk.parent
        dangling[(fk.table, name)] = int((np.isnan(rows) & ~null).sum())
        missing[(fk.table, name)] = int(null.sum())
    return KeyedTables(tables=out, specs=specs, dangling=dangling, missing=missing)


def _check_references(
    tables: Mapping[str, pd.DataFrame],
    pkeys: Mapping[str, Sequence[str]],
    fkeys: Sequence[ForeignKey],
    time_cols: Mapping[str, str],
) -> None:
    """Every named table and column exists, and every foreign key's parent table does."""
    for table, cols in pkeys.items():
        _check_columns(tables, table, cols)
    for table, col in time_cols.items():
        _check_columns(tables, table, [col])
    for fk in fkeys:
        _check_columns(tables, fk.table, fk.columns)
        if fk.parent not in tables:
            raise DatasetError(
                f"foreign key to unknown table {fk.parent!r}",
                table=fk.table,
                column=", ".join(fk.columns),
            )


def _insert_surrogate(out: dict[str, pd.DataFrame], table: str, natural: Sequence[str]) -> str:
    """Check the natural key (non-null, unique), insert ``<table>_id`` = 0..n-1 first; its name."""
    df = out[table]
    natural = list(natural)
    if natural:
        null = df[natural].isna().any(axis=1)
        if null.any():
            raise DatasetError(
                f"{int(null.sum())} rows have a null primary key",
                table=table,
                column=", ".join(natural),
                rows=_examples(df, null),
            )
        dup = df.duplicated(natural, keep=False)
        if dup.any():
            raise DatasetError(
                f"{int(dup.sum())} rows share a primary key value",
                table=table,
                column=", ".join(natural),
                rows=_examples(df, dup),
            )
    name = unique_column_name(f"{table}_id", set(df.columns))
    df.insert(0, name, np.arange(len(df), dtype=np.int64))
    return name


def _match_parent_rows(
    out: dict[str, pd.DataFrame], fk: ForeignKey, parent_cols: list[str], pkey_name: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per child row, the parent's surrogate key (NaN when unmatched) and whether the child's
    key is (partly) null."""
    column = ", ".join(fk.columns)
    if not parent_cols:
        raise DatasetError(
            f"foreign key to {fk.parent!r}, which has no primary key; name the "
            "referenced columns",
            table=fk.table,
            column=column,
        )
    if len(parent_cols) != len(fk.columns):
        raise DatasetError(
            f"foreign key has {len(fk.columns)} columns but {fk.parent!r} is keyed "
            f"by {len(parent_cols)} ({parent_cols})",
            table=fk.table,
            column=column,
        )
    _check_columns(out, fk.parent, parent_cols)
    child, parent = out[fk.table], out[fk.parent]
    tmp = [f"k{i}" for i in range(len(parent_cols))]
    lookup = parent[parent_cols].set_axis(tmp, axis=1)
    lookup = lookup.assign(_row=parent[pkey_name[fk.parent]].to_numpy()).dropna(subset=tmp)
    if lookup.duplicated(tmp).any():
        raise DatasetError(
            "referenced columns are not unique",
            table=fk.parent,
            column=", ".join(parent_cols),
            rows=_examples(parent, parent.duplicated(parent_cols, keep=False)),
        )
    left = child[list(fk.columns)].set_axis(tmp, axis=1)
    try:
        merged = left.merge(lookup, on=tmp, how="left")
    except ValueError as exc:  # incompatible key dtypes, e.g. text against integer
        raise DatasetError(
            f"cannot match against {fk.parent}.{parent_cols}: {exc}",
            table=fk.table,
            column=column,
        ) from exc
    return merged["_row"].to_numpy(dtype="float64"), left.isna().any(axis=1).to_numpy()
