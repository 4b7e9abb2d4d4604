"""TPC-H at any scale factor (``tpchgen-cli``) as a RelBench dataset: the scale database.

TPC-H is the standard synthetic warehouse: eight tables, SF1 about 8.7M rows (6M line
items), free-text comment columns on every table. ``tpchgen-cli`` (a Rust generator on the
package index) writes it as parquet in seconds, offline, so the chain can be measured at
0.01, 0.1, 0.3, 1 and beyond on one machine.

Row times say when a row becomes known: an order at its order date, a line item when it is
received (its ship date is then past; its commit date was promised when it was ordered).
Parts, suppliers, customers and the geography are static. Columns that only identify a row
(names such as ``Customer#000000001``, random addresses and phone numbers) are dropped with the
natural keys, and so is ``o_orderstatus``: the generator derives it from whether the order's
line items shipped before mid-1995, up to 121 days after the order date, so at the order's
time it would tell the future. Comments are kept.

The task ``customer-reorder`` asks, for every customer with an order in the year up to T,
whether they order again within 90 days. TPC-H's order stream is uniform at random, so no
model should beat AUROC 0.5 by much: the database measures cost, not utility.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
from relbench.manifest import KIND_FORECAST, TaskManifest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import write_dataset, write_task
from t2g_lib.data.keys import ForeignKey, assign_surrogate_keys
from t2g_lib.data.sql import quote_ident

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
PKEYS = {"region": ("r_regionkey",), "nation": ("n_nationkey",), "supplier": ("s_suppkey",),
         "customer": ("c_custkey",), "part": ("p_partkey",), "partsupp": ("ps_partkey", "ps_suppkey"),
         "orders": ("o_orderkey",)}
FKEYS = [
    ForeignKey("nation", ("n_regionkey",), "region"),
    ForeignKey("supplier", ("s_nationkey",), "nation"),
    ForeignKey("customer", ("c_nationkey",), "nation"),
    ForeignKey("partsupp", ("ps_partkey",), "part"),
    ForeignKey("partsupp", ("ps_suppkey",), "supplier"),
    ForeignKey("orders", ("o_custkey",), "customer"),
    ForeignKey("lineitem", ("l_orderkey",), "orders"),
    ForeignKey("lineitem", ("l_partkey", "l_suppkey"), "partsupp"),
]
TIME_COLS = {"orders": "o_orderdate", "lineitem": "l_receiptdate"}
NATURAL_KEYS = ("r_regionkey", "n_nationkey", "n_regionkey", "s_suppkey", "s_nationkey", "c_custkey",
                "c_nationkey", "p_partkey", "ps_partkey", "ps_suppkey", "o_orderkey", "o_custkey",
                "l_orderkey", "l_partkey", "l_suppkey")
IDENTIFYING = ("c_name", "c_address", "c_phone", "s_name", "s_address", "s_phone")
"""Strings unique per row (or random) that say nothing a model could use."""
FUTURE = ("o_orderstatus",)
"""Known only after the row's time (see the module docstring)."""

MIN_SCALE = 0.01
TIMEDELTA = "90 days"
LOOKBACK = "365 days"
EVAL_TIMESTAMPS = 2
VAL_TIMESTAMP = pd.Timestamp("1997-07-01")
TEST_TIMESTAMP = pd.Timestamp("1998-01-01")
"""Orders run from 1992-01-01 to 1998-08-02: two 90-day windows each for val and test."""


def _generator() -> str:
    """The ``tpchgen-cli`` executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("tpchgen-cli")
    found = str(beside) if beside.is_file() else shutil.which("tpchgen-cli")
    if found is None:
        raise DatasetError("tpchgen-cli is not installed: pip install tpchgen-cli")
    return found


def generator_version() -> str:
    """``tpchgen-cli``'s own version line, e.g. ``tpchgen-cli 4.0.0``."""
    return subprocess.run([_generator(), "--version"], capture_output=True, text=True).stdout.strip()


def generate_parquet(scale: float, out_dir: Path) -> Path:
    """TPC-H at scale factor ``scale`` as one parquet file per table in ``out_dir``."""
    if not scale >= MIN_SCALE:
        raise DatasetError(f"TPC-H scale factor must be at least {MIN_SCALE} (below it the generator "
                           f"repeats partsupp keys), got {scale!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([_generator(), "parquet", "-s", str(scale), f"--output-dir={out_dir}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DatasetError(f"tpchgen-cli failed at scale {scale}: {done.stderr.strip()[-500:]}")
    return out_dir


def load_source_tables(parquet_dir: Path) -> dict[str, pd.DataFrame]:
    """The generated tables with money as float, dates as timestamps and identifying
    strings dropped (DuckDB casts while reading)."""
    out = {}
    with duckdb.connect() as con:
        for t in TABLES:
            rel = con.read_parquet(str(parquet_dir / f"{t}.parquet"))
            select = []
            for name, kind in zip(rel.columns, rel.types):
                if name in IDENTIFYING or name in FUTURE:
                    continue
                kind = str(kind)
                cast = "DOUBLE" if kind.startswith("DECIMAL") else "TIMESTAMP" if kind == "DATE" else None
                select.append(f"CAST({quote_ident(name)} AS {cast}) AS {quote_ident(name)}" if cast else quote_ident(name))
            out[t] = rel.select(", ".join(select)).df()
    return out


def _reorder_sql(cid: str, fk: str) -> str:
    """Label SQL: customers with an order in (T - LOOKBACK, T]; 1 if they order in (T, T + timedelta]."""
    q = quote_ident
    ts, od = q("timestamp"), q("o_orderdate")
    return (
        f"WITH active AS (\n"
        f"SELECT DISTINCT s.{ts}, o.{q(fk)} AS {q(cid)}\n"
        f"FROM timestamps s JOIN orders o\n"
        f"  ON o.{od} <= s.{ts} AND o.{od} > s.{ts} - INTERVAL '{LOOKBACK}'\n"
        f"WHERE o.{q(fk)} IS NOT NULL\n"
        f"),\nfuture AS (\n"
        f"SELECT DISTINCT s.{ts}, o.{q(fk)} AS {q(cid)}\n"
        f"FROM timestamps s JOIN orders o\n"
        f"  ON o.{od} > s.{ts} AND o.{od} <= s.{ts} + INTERVAL '{{timedelta}}'\n"
        f")\n"
        f"SELECT a.{ts}, a.{q(cid)}, CAST(f.{q(cid)} IS NOT NULL AS INTEGER) AS {q('reorder')}\n"
        f"FROM active a LEFT JOIN future f\n"
        f"  ON f.{ts} = a.{ts} AND f.{q(cid)} = a.{q(cid)}"
    )


def build_tpch(out_dir: Path, name: str = "tpch", scale: float = 0.01) -> Path:
    """Generate TPC-H at ``scale``, write it and its task to ``out_dir/name``; the folder."""
    with tempfile.TemporaryDirectory(prefix="t2g-tpch-") as tmp:
        keyed = assign_surrogate_keys(load_source_tables(generate_parquet(scale, Path(tmp))), PKEYS, FKEYS,
                                      time_cols=TIME_COLS)
    for table, df in keyed.tables.items():  # the natural keys carry no meaning once keyed
        keyed.tables[table] = df.drop(columns=[c for c in NATURAL_KEYS if c in df.columns])
    folder = write_dataset(
        Path(out_dir) / name, name, keyed.tables, keyed.specs,
        val_timestamp=VAL_TIMESTAMP, test_timestamp=TEST_TIMESTAMP,
        description=f"TPC-H at scale factor {scale} ({generator_version()}).",
    )
    cid = keyed.specs["customer"].pkey
    fk = next(c for c, p in keyed.specs["orders"].fkeys.items() if p == "customer")
    write_task(folder, TaskManifest(
        name="customer-reorder", kind=KIND_FORECAST, task_type="binary_classification",
        description=f"1 if a customer with an order in the {LOOKBACK} up to T orders again within {TIMEDELTA}",
        entity_table="customer", entity_col=cid, target_col="reorder", time_col="timestamp",
        timedelta=TIMEDELTA, num_eval_timestamps=EVAL_TIMESTAMPS, sql=_reorder_sql(cid, fk),
    ))
    return folder
