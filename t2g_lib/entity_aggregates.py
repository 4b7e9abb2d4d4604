"""The features a practitioner hands a gradient-boosting model: per label ``(entity, T)``,
the entity's own columns and, per child table, how many related rows it has, how recent
they are and what their numbers average, all computed with DuckDB from rows stamped <= T.

The time rule is the temporal sampler's (a row is visible to a label when its time is <= T;
a row without a time is always visible), so the reference sees no more than the GNN does.
"""

from __future__ import annotations

import tempfile

import duckdb
import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.data.sql import quote_ident
from t2g_lib.graph import GraphSchema, fkey_index
from t2g_lib.task_data import TaskData
from t2g_lib.timestamps import to_seconds

DAY = 86400
AGGREGATE_MEMORY = "2GB"
"""DuckDB's memory for the label x related-row joins; beyond it they spill to a temporary
folder (on TPC-H SF1 a customer's labels times its order lines are about 10^8 joined rows)."""
MAX_CATEGORIES = 254
"""Categories kept per categorical column (the rest become missing): a histogram GBM bins
each categorical feature into at most 255 bins."""


def task_window_seconds(task: TaskData) -> int:
    """The task's forecast window in seconds; without one, the median gap between its train
    timestamps (a year when it has a single timestamp)."""
    if task.window is not None:
        return int(task.window.total_seconds())
    stamps = np.unique(to_seconds(task.train[task.time_col]))
    return int(np.median(np.diff(stamps))) if len(stamps) > 1 else 365 * DAY


def _usable(columns: dict[str, str], hidden: set[tuple[str, str]], table: str, stype: str) -> list[str]:
    return [c for c, s in columns.get(table, {}).items() if s == stype and (table, c) not in hidden]


def aggregate_columns(
    entity_table: str, column_types: dict[str, dict[str, str]], hidden: set[tuple[str, str]]
) -> dict[str, list[str]]:
    """The columns ``label_features`` reads besides keys and times: the entity table's
    numbers, categories and timestamps, and every other table's numbers. A snapshot read
    with only these (``read_database(columns=)``) gives the same features without holding a
    large database's text and its other tables' category strings."""
    return {
        table: [c for stype in (("numerical", "categorical", "timestamp") if table == entity_table else ("numerical",))
                for c in _usable(column_types, hidden, table, stype)]
        for table in column_types
    }


def entity_columns(
    db: Database, task: TaskData, labels: pd.DataFrame, column_types: dict[str, dict[str, str]],
    hidden: set[tuple[str, str]],
) -> pd.DataFrame:
    """The entity row's own columns per label: numbers as they are, categories as pandas
    categoricals (the most frequent ``MAX_CATEGORIES``), timestamps as days before T, and T
    itself (days since the epoch) so the model can tell eras apart."""
    table = db.table_dict[task.entity_table]
    rows = labels[task.entity_col].to_numpy(dtype=np.int64)
    t = to_seconds(labels[task.time_col])
    out = {"label_time_days": t / DAY}
    for col in _usable(column_types, hidden, task.entity_table, "numerical"):
        values = pd.to_numeric(table.df[col], errors="coerce").to_numpy(float)[rows]
        out[f"{task.entity_table}.{col}"] = np.where(np.isfinite(values), values, np.nan)
    for col in _usable(column_types, hidden, task.entity_table, "categorical"):
        raw = table.df[col]
        values = raw.astype(str).where(raw.notna(), None)  # plain strings: sklearn refuses pd.NA
        keep = list(values.value_counts().index[:MAX_CATEGORIES])
        cats = pd.Categorical(values.where(values.isin(keep), None), categories=keep)
        out[f"{task.entity_table}.{col}"] = cats[rows]
    time_cols = _usable(column_types, hidden, task.entity_table, "timestamp")
    for col in time_cols + ([table.time_col] if table.time_col and table.time_col not in time_cols else []):
        when = pd.to_datetime(table.df[col], errors="coerce").to_numpy()[rows]
        seconds = when.astype("datetime64[s]").astype("float64")
        seconds[np.isnat(when)] = np.nan
        out[f"{task.entity_table}.{col}_days_before"] = (t - seconds) / DAY
    return pd.DataFrame(out)


def related_rows(db: Database, entity_table: str) -> list[tuple[str, str, np.ndarray]]:
    """Every table whose rows point at the entity table through one foreign key (children)
    or two (grandchildren, e.g. a customer's order lines through its orders): per path,
    its name, the table at its end, and the entity row of each of that table's rows (-1
    where a key is missing)."""
    relations = GraphSchema.from_database(db).relations
    paths = []
    for rel in relations:
        if rel.parent != entity_table:
            continue
        owner = fkey_index(db, rel)
        paths.append((f"{rel.child}.{rel.fkey_col}", rel.child, owner))
        for sub in relations:
            if sub.parent == rel.child and sub.child != entity_table:
                via = fkey_index(db, sub)
                paths.append((f"{rel.child}.{rel.fkey_col}/{sub.child}.{sub.fkey_col}", sub.child,
                              np.where(via >= 0, owner[np.maximum(via, 0)], -1)))
    return paths


def child_aggregates(
    db: Database, task: TaskData, labels: pd.DataFrame, column_types: dict[str, dict[str, str]],
    hidden: set[tuple[str, str]],
) -> pd.DataFrame:
    """Per table related to the entity (``related_rows``: children and grandchildren, one
    block per foreign-key path): row counts over all history, the last window and the window
    before it; days since the first and the latest row; distinct timestamps; per numeric
    column its mean over history and its sums over the last two windows. Labels whose
    entity has no visible related row get counts of 0."""
    window = task_window_seconds(task)
    with tempfile.TemporaryDirectory(prefix="t2g-aggregates-") as spill, duckdb.connect(
        config={"memory_limit": AGGREGATE_MEMORY, "temp_directory": spill}
    ) as con:
        con.register("labels", pd.DataFrame({
            "i": np.arange(len(labels)),
            "e": labels[task.entity_col].to_numpy(dtype=np.int64),
            "t": to_seconds(labels[task.time_col]),
        }))
        blocks = []
        for prefix, table, owner in related_rows(db, task.entity_table):
            child = db.table_dict[table]
            keys = set(child.fkey_col_to_pkey_table)
            nums = [c for c in _usable(column_types, hidden, table, "numerical") if c not in keys]
            frame = pd.DataFrame({"e": owner})
            timed = child.time_col is not None
            if timed:
                times = to_seconds(child.df[child.time_col]).astype("float64")
                times[pd.isna(child.df[child.time_col]).to_numpy()] = np.nan
                frame["t"] = times
            for j, col in enumerate(nums):
                values = pd.to_numeric(child.df[col], errors="coerce").astype("float64")
                frame[f"x{j}"] = values.where(np.isfinite(values))  # an infinity is missing, as for the GBM
            con.register("child", frame[frame["e"] >= 0])
            win = f"c.t > l.t - {window} AND c.t <= l.t"
            prev = f"c.t > l.t - {2 * window} AND c.t <= l.t - {window}"
            parts = [f"count(c.e) AS {quote_ident(prefix + '.count')}"]
            if timed:
                parts += [
                    f"count(c.e) FILTER (WHERE {win}) AS {quote_ident(prefix + '.count_window')}",
                    f"count(c.e) FILTER (WHERE {prev}) AS {quote_ident(prefix + '.count_prev_window')}",
                    f"(l.t - max(c.t)) / {DAY} AS {quote_ident(prefix + '.days_since_last')}",
                    f"(l.t - min(c.t)) / {DAY} AS {quote_ident(prefix + '.days_since_first')}",
                    f"count(DISTINCT c.t) AS {quote_ident(prefix + '.distinct_times')}",
                ]
            for j, col in enumerate(nums):
                name = f"{prefix}.{col}"
                parts.append(f"avg(c.x{j}) AS {quote_ident(name + '.mean')}")
                if timed:
                    parts.append(f"coalesce(sum(c.x{j}) FILTER (WHERE {win}), 0) AS {quote_ident(name + '.sum_window')}")
                    parts.append(
                        f"coalesce(sum(c.x{j}) FILTER (WHERE {prev}), 0) AS {quote_ident(name + '.sum_prev_window')}"
                    )
            visible = "AND (c.t IS NULL OR c.t <= l.t)" if timed else ""
            sql = (f"SELECT {', '.join(parts)} FROM labels l LEFT JOIN child c ON c.e = l.e {visible} "
                   "GROUP BY l.i, l.t ORDER BY l.i")
            blocks.append(con.execute(sql).df())
            con.unregister("child")
    return pd.concat(blocks, axis=1) if blocks else pd.DataFrame(index=range(len(labels)))


def label_features(
    db: Database, task: TaskData, labels: pd.DataFrame, column_types: dict[str, dict[str, str]],
    hidden: set[tuple[str, str]],
) -> pd.DataFrame:
    """Entity columns and child aggregates, one row per label, in the labels' order."""
    own = entity_columns(db, task, labels, column_types, hidden)
    return pd.concat([own, child_aggregates(db, task, labels, column_types, hidden)], axis=1)
