"""Write a distilled graph as a RelBench-format folder, a DuckDB file and PyG files.

The RelBench folder is the product: any RelBench-style pipeline loads it with
``relbench.load_dataset(path).get_db()`` and trains on its task folder. Each table keeps its
name and its foreign-key column names from the source, so a model configured for the source
schema runs unchanged; synthetic primary keys are ``0..n'-1`` as RelBench requires.

Table and column names are user data. RelBench reads ``db/<table>.parquet`` literally, so
the folder is written by the data layer (``t2g_lib.data.format``: literal names, those no
file system can hold rejected, key contract checked); in DuckDB every identifier is quoted
(``quote_ident``), and generated column names (``id``, ``f0``..., ``block``) step aside when
a user column already has that name.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from relbench.manifest import KIND_EXTERNAL, TableSpec, TaskManifest

from t2g_lib.data.duck import schema_name, write_tables
from t2g_lib.data.format import (
    DB_DIR,
    MANIFEST,
    PARQUET_SUFFIX,
    TASKS_DIR,
    check_name,
    validate_dataset_folder,
    write_dataset,
)
from t2g_lib.graph import SyntheticGraph

DEFAULT_LABEL_COL = "label"


@dataclass
class ExportInfo:
    """Where the distilled database went and how big it is (for asset metadata)."""

    relbench_dir: Path
    duckdb_path: Path
    duckdb_schema: str
    pyg_path: Path
    graph_dir: Path
    task_dir: Path | None
    distilled_bytes: int  # the RelBench folder's db/*.parquet on disk
    payload_bytes: int  # features + int32 edges + labels, as SyntheticGraph.nbytes() counts
    source_bytes: int | None  # the source folder's db/*.parquet on disk
    compression_ratio: float | None  # source_bytes / distilled_bytes
    nodes: dict[str, int]
    pkey_col: dict[str, str]
    label_col: str


def _fresh(name: str, taken: set[str]) -> str:
    """``name``, or ``name_``, ``name__``... whichever no other column uses (case-blind, as
    DuckDB compares identifiers)."""
    while name.lower() in taken:
        name += "_"
    taken.add(name.lower())
    return name


def _label_array(y: np.ndarray) -> pa.Array:
    """Soft labels: one float per row, or one list of class probabilities per row."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        return pa.array(y)
    if y.ndim == 2:
        offsets = np.arange(0, y.size + 1, y.shape[1], dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(y.reshape(-1)))
    raise ValueError(f"labels must be (n,) or (n, C), got shape {y.shape}")


def _rows(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` as (n, d): a table may hold no rows (a coreset whose examples never reach it)."""
    return x if x.ndim == 2 else x.reshape(n, -1)


def _tables(graph: SyntheticGraph, label_col: str) -> tuple[dict[str, pa.Table], dict[str, str]]:
    """One arrow table per source table, and the primary-key column name of each."""
    gs = graph.schema
    nodes = graph.num_nodes()
    y = np.asarray(graph.y)
    if y.shape[0] != nodes[graph.target_table]:
        raise ValueError(f"target table {graph.target_table!r}: {y.shape[0]} labels for "
                         f"{nodes[graph.target_table]} synthetic rows")
    out: dict[str, pa.Table] = {}
    pkeys: dict[str, str] = {}
    for t in gs.tables:
        rels = [r for r in gs.relations if r.child == t]
        user_cols = [r.fkey_col for r in rels] + ([label_col] if t == graph.target_table else [])
        taken: set[str] = set()
        for c in user_cols:
            if c.lower() in taken:
                raise ValueError(f"table {t!r}: column {c!r} is both a foreign key and the label "
                                 "(or two columns differ only in case)")
            taken.add(c.lower())
        pkeys[t] = _fresh("id", taken)
        cols: dict[str, pa.Array] = {pkeys[t]: pa.array(np.arange(nodes[t], dtype=np.int64))}
        for r in rels:
            parent = np.asarray(graph.parents[r.index], dtype=np.int64)
            if len(parent) != nodes[t] or ((parent < -1) | (parent >= nodes[r.parent])).any():
                raise ValueError(f"table {t!r}: foreign key {r.fkey_col!r} must give every one of "
                                 f"{nodes[t]} rows a parent in [0, {nodes[r.parent]}), or -1 for none")
            # -1: the row's parent is not in the graph (a coreset row whose parent lies beyond
            # the sampled hops), written as a missing key, as a dangling key reads in RelBench.
            cols[r.fkey_col] = pa.array(parent, mask=parent < 0)
        # Rows stored through a codec are written as their coefficients (c0..; float32, which
        # DuckDB reads; the codec to decode them is in graph/), others as features (f0..).
        if graph.codec is None:
            x, prefix = _rows(np.asarray(graph.x[t], dtype=np.float32), nodes[t]), "f"
        else:
            x, prefix = _rows(graph.coefficients(t).astype(np.float32), nodes[t]), "c"
        for i in range(x.shape[1]):
            cols[_fresh(f"{prefix}{i}", taken)] = pa.array(x[:, i])
        if t in graph.blocks:
            cols[_fresh("block", taken)] = pa.array(np.asarray(graph.blocks[t], dtype=np.int64))
        if t == graph.target_table:
            cols[label_col] = _label_array(y)
        out[t] = pa.table(cols)
    return out, pkeys


def _task(tm: TaskManifest, graph: SyntheticGraph, pkey: str, label_col: str,
          val_timestamp: pd.Timestamp | str) -> tuple[TaskManifest, pa.Table]:
    """An external task over the synthetic target rows: one soft label each, at one time,
    and each earlier label (``graph.earlier``) its shift before that time.

    The time is the last one whose label window (``timedelta``) closes before validation
    starts, so the labels read as training labels of the source task. The label column is
    also in the target table; ``remove_columns`` hides it from the model's inputs.
    """
    if tm.entity_table != graph.target_table:
        raise ValueError(f"task {tm.name!r} is on table {tm.entity_table!r}, but the graph was "
                         f"distilled for {graph.target_table!r}")
    if tm.task_type == "recommendation":
        raise ValueError(f"task {tm.name!r}: recommendation tasks are not distilled")
    check_name(tm.name, "task")
    entity_col = tm.entity_col or pkey
    taken = {entity_col.lower(), label_col.lower()}
    if len(taken) < 2:
        raise ValueError(f"task {tm.name!r}: entity column and target column are both {entity_col!r}")
    time_col = _fresh(tm.time_col or "timestamp", taken)
    window = tm.timedelta or "1 day"
    when = pd.Timestamp(val_timestamp) - pd.Timedelta(window)
    at = np.full(len(graph.y), when.to_datetime64().astype("datetime64[ns]"))
    entity, y = np.arange(len(graph.y), dtype=np.int64), np.asarray(graph.y)
    if graph.earlier is not None:  # each earlier label, its shift before the others
        shift = (np.asarray(graph.earlier.shift, dtype=np.float64) * 86400e9).astype("timedelta64[ns]")
        at = np.concatenate([at, at[:1] - shift]) if len(at) else at
        entity = np.concatenate([entity, np.asarray(graph.earlier.node, dtype=np.int64)])
        y = np.concatenate([y, np.asarray(graph.earlier.y, dtype=y.dtype)])
    labels = pa.table({time_col: pa.array(at), entity_col: pa.array(entity), label_col: _label_array(y)})
    manifest = TaskManifest(
        name=tm.name,
        kind=KIND_EXTERNAL,
        task_type=tm.task_type,
        description=f"Synthetic soft labels of a distilled graph (from task {tm.name!r}).",
        entity_table=graph.target_table,
        entity_col=entity_col,
        target_col=label_col,
        time_col=time_col,
        timedelta=window,
        remove_columns=[[graph.target_table, label_col]],
    )
    manifest.validate()
    return manifest, labels


def parquet_bytes(db_dir: Path) -> int:
    """Bytes of the parquet tables in a RelBench `db/` folder: the storage compared with the source."""
    return sum(p.stat().st_size for p in db_dir.glob(f"*{PARQUET_SUFFIX}"))


def _write_duckdb(path: Path, name: str, tables: dict[str, pa.Table]) -> None:
    """A fresh DuckDB file holding the distilled tables in the data layer's schema for ``name``."""
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        write_tables(con, name, tables)


def export_distilled(
    graph: SyntheticGraph,
    out_dir: Path,
    name: str,
    task_manifest: TaskManifest | None,
    source_dir: Path | None,
    val_timestamp: pd.Timestamp | str,
    test_timestamp: pd.Timestamp | str,
) -> ExportInfo:
    """Write ``graph`` under ``out_dir`` (replacing an earlier export there).

    ``out_dir/relbench/`` (RelBench folder, plus ``tasks/<task>/`` when a task is given),
    ``out_dir/distilled.duckdb`` (schema ``schema_name(name)``, the data layer's rule, which
    never clashes with the file's own catalog name ``distilled``), ``out_dir/graph.pt``
    (PyG ``HeteroData``) and ``out_dir/graph/`` (``SyntheticGraph.save``).
    ``val_timestamp`` / ``test_timestamp`` are the source dataset's split times.
    """
    import torch

    if not name:
        raise ValueError("the distilled dataset needs a non-empty name")
    gs = graph.schema
    lowered: dict[str, str] = {}
    for t in gs.tables:
        check_name(t)
        if t.lower() in lowered:
            raise ValueError(f"tables {lowered[t.lower()]!r} and {t!r} differ only in case, "
                             "which DuckDB cannot hold apart")
        lowered[t.lower()] = t
    if source_dir is not None and not (Path(source_dir) / DB_DIR).is_dir():
        raise FileNotFoundError(f"source dataset {source_dir} has no db/ folder")
    label_col = (task_manifest.target_col if task_manifest else None) or DEFAULT_LABEL_COL
    tables, pkeys = _tables(graph, label_col)
    task = (_task(task_manifest, graph, pkeys[graph.target_table], label_col, val_timestamp)
            if task_manifest is not None else None)

    out_dir = Path(out_dir)
    relbench_dir = out_dir / "relbench"
    if relbench_dir.exists():
        shutil.rmtree(relbench_dir)
    specs = {
        t: TableSpec(pkey=pkeys[t], time_col=None,
                     fkeys={r.fkey_col: r.parent for r in gs.relations if r.child == t})
        for t in gs.tables
    }
    write_dataset(relbench_dir, name, {t: tb.to_pandas() for t, tb in tables.items()}, specs,
                  val_timestamp, test_timestamp,
                  description="Distilled by t2g: synthetic rows, features f0.. (or codec coefficients c0.., "
                              "decoded by graph/'s codec), SBM foreign keys.")
    task_dir = None
    if task is not None:
        tm, labels = task
        task_dir = relbench_dir / TASKS_DIR / tm.name
        task_dir.mkdir(parents=True)
        tm.save(task_dir / MANIFEST)
        pq.write_table(labels, task_dir / f"train{PARQUET_SUFFIX}")
    validate_dataset_folder(relbench_dir)

    duckdb_path = out_dir / "distilled.duckdb"
    _write_duckdb(duckdb_path, name, tables)
    pyg_path = out_dir / "graph.pt"
    torch.save(graph.to_hetero(), pyg_path)
    graph_dir = graph.save(out_dir / "graph")

    distilled = parquet_bytes(relbench_dir / DB_DIR)
    source = parquet_bytes(Path(source_dir) / DB_DIR) if source_dir is not None else None
    return ExportInfo(
        relbench_dir=relbench_dir,
        duckdb_path=duckdb_path,
        duckdb_schema=schema_name(name),
        pyg_path=pyg_path,
        graph_dir=graph_dir,
        task_dir=task_dir,
        distilled_bytes=distilled,
        payload_bytes=graph.nbytes(),
        source_bytes=source,
        compression_ratio=source / distilled if source is not None and distilled else None,
        nodes=graph.num_nodes(),
        pkey_col=pkeys,
        label_col=label_col,
    )


@dataclass
class DistilledDatabase:
    """A distilled graph ready to publish. It stores itself (``save``) as ``export_distilled``
    writes it, in the folder its caller picks; ``load`` reads it back from there."""

    graph: SyntheticGraph
    name: str
    task_manifest: TaskManifest | None
    source_dir: Path | None
    val_timestamp: str
    test_timestamp: str
    folder: Path | None = None  # where it was stored, once loaded

    @property
    def label_col(self) -> str:
        return (self.task_manifest.target_col if self.task_manifest else None) or DEFAULT_LABEL_COL

    def tables(self) -> dict[str, pa.Table]:
        """The distilled tables, as the RelBench folder holds them."""
        return _tables(self.graph, self.label_col)[0]

    def save(self, path: Path) -> Path:
        path = Path(path)
        export_distilled(self.graph, path, self.name, self.task_manifest, self.source_dir,
                         self.val_timestamp, self.test_timestamp)
        meta = {"name": self.name, "source_dir": None if self.source_dir is None else str(self.source_dir),
                "val_timestamp": str(self.val_timestamp), "test_timestamp": str(self.test_timestamp),
                "task": None if self.task_manifest is None else self.task_manifest.name}
        (path / "published.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: Path) -> "DistilledDatabase":
        path = Path(path)
        meta = json.loads((path / "published.json").read_text())
        task = None
        if meta["task"] is not None:
            task = TaskManifest.load(path / "relbench" / TASKS_DIR / meta["task"] / MANIFEST)
        source = None if meta["source_dir"] is None else Path(meta["source_dir"])
        return cls(SyntheticGraph.load(path / "graph"), meta["name"], task, source,
                   meta["val_timestamp"], meta["test_timestamp"], folder=path)

    def stored_metadata(self, path: Path) -> dict:
        """Sizes on disk of the stored folder against the source's parquet files."""
        distilled = parquet_bytes(Path(path) / "relbench" / DB_DIR)
        source = parquet_bytes(Path(self.source_dir) / DB_DIR) if self.source_dir is not None else None
        out = {"relbench_folder": str(Path(path) / "relbench"), "distilled_bytes": distilled,
               "payload_bytes": self.graph.nbytes()}
        if source:
            out.update(source_bytes=source, compression_ratio=source / max(distilled, 1))
        return out
