"""The relational entity graph (REG) and the distilled graph, in one naming scheme.

Table and column names are user data (spaces, dots, ``keys``, ``update``...), and PyG keys
modules and parameters by node and edge type. So inside every graph t2g builds, node types
are positional (``t0``, ``t1``...) and edge types are ``(child, "f2p_<j>", parent)`` plus the
reverse ``(parent, "rev_f2p_<j>", child)``, where ``j`` indexes the relation. ``GraphSchema``
is the one place that maps those internal names back to tables and foreign-key columns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.timestamps import to_seconds

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class Relation:
    """One foreign key: every ``child`` row points to at most one ``parent`` row."""

    index: int
    child: str
    fkey_col: str
    parent: str

    @property
    def name(self) -> str:
        return f"f2p_{self.index}"

    @property
    def reverse_name(self) -> str:
        return f"rev_f2p_{self.index}"


@dataclass
class GraphSchema:
    """Tables in a fixed order, their internal node types, and the foreign-key relations."""

    tables: list[str]
    relations: list[Relation]
    time_cols: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_database(cls, db: Database) -> "GraphSchema":
        tables = sorted(db.table_dict)
        relations: list[Relation] = []
        for child in tables:
            table = db.table_dict[child]
            for col in sorted(table.fkey_col_to_pkey_table):
                relations.append(
                    Relation(len(relations), child, col, table.fkey_col_to_pkey_table[col])
                )
        time_cols = {t: db.table_dict[t].time_col for t in tables}
        return cls(tables, relations, time_cols)

    def node_type(self, table: str) -> str:
        return f"t{self.tables.index(table)}"

    def table_of(self, node_type: str) -> str:
        return self.tables[int(node_type[1:])]

    def edge_types(self, relation: Relation) -> tuple[EdgeType, EdgeType]:
        """Forward (child -> parent) and reverse edge types of one relation."""
        c, p = self.node_type(relation.child), self.node_type(relation.parent)
        return (c, relation.name, p), (p, relation.reverse_name, c)

    @staticmethod
    def brings_children(edge_type: EdgeType) -> bool:
        """Whether messages on ``edge_type`` go from children to their parent (``f2p_<j>``)."""
        return edge_type[1].startswith("f2p_")

    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        """PyG ``(node_types, edge_types)`` shared by the real and the distilled graph."""
        edge_types: list[EdgeType] = []
        for rel in self.relations:
            edge_types.extend(self.edge_types(rel))
        return [self.node_type(t) for t in self.tables], edge_types

    def to_dict(self) -> dict:
        return {
            "tables": self.tables,
            "relations": [
                {"child": r.child, "fkey_col": r.fkey_col, "parent": r.parent}
                for r in self.relations
            ],
            "time_cols": self.time_cols,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "GraphSchema":
        rels = [
            Relation(i, r["child"], r["fkey_col"], r["parent"])
            for i, r in enumerate(d["relations"])
        ]
        return cls(list(d["tables"]), rels, dict(d.get("time_cols", {})))


def fkey_index(db: Database, relation: Relation) -> np.ndarray:
    """Parent row index per child row, -1 where the key is missing or dangling."""
    values = pd.to_numeric(db.table_dict[relation.child].df[relation.fkey_col], errors="coerce")
    n_parent = len(db.table_dict[relation.parent].df)
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(arr) & (arr >= 0) & (arr < n_parent)
    out = np.full(len(arr), -1, dtype=np.int64)
    out[ok] = arr[ok].astype(np.int64)
    return out


def table_times(db: Database, table: str) -> np.ndarray | None:
    """Row timestamps as int64 seconds since the epoch, or None for a timeless table."""
    t = db.table_dict[table]
    if t.time_col is None:
        return None
    return to_seconds(t.df[t.time_col])


def build_reg(db: Database, features: dict[str, np.ndarray] | None = None):
    """The real relational entity graph as a PyG ``HeteroData`` (all rows, all times).

    ``features`` maps table -> (n_rows, d) array; node ``time`` (seconds) is attached for
    timed tables so temporal samplers and leakage checks can read it.
    """
    import torch
    from torch_geometric.data import HeteroData

    gs = GraphSchema.from_database(db)
    data = HeteroData()
    for table in gs.tables:
        nt = gs.node_type(table)
        data[nt].num_nodes = len(db.table_dict[table].df)
        if features is not None:
            data[nt].x = torch.as_tensor(np.asarray(features[table]), dtype=torch.float32)
        times = table_times(db, table)
        if times is not None:
            data[nt].time = torch.as_tensor(times)
    for rel in gs.relations:
        parent = fkey_index(db, rel)
        child = np.flatnonzero(parent >= 0)
        ei = torch.as_tensor(np.stack([child, parent[child]]), dtype=torch.long)
        fwd, rev = gs.edge_types(rel)
        data[fwd].edge_index = ei
        data[rev].edge_index = ei.flip(0)
    return data, gs


@dataclass
class EarlierSeeds:
    """Labelled examples of target nodes at earlier times: example ``i`` is node ``node[i]``
    seen ``shift[i]`` days before the time its ages are measured from, labelled ``y[i]``.
    Stored as int32 nodes and float32 shifts and labels, 12 bytes an example (binary)."""

    node: np.ndarray
    shift: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.node)

    def nbytes(self) -> int:
        return int(4 * len(self.node) + 4 * len(self.shift) + np.asarray(self.y, dtype=np.float32).nbytes)


@dataclass
class SyntheticGraph:
    """A distilled (or coreset) database: a few nodes per table, FK edges, target labels.

    ``parents[j]`` holds, for relation ``j``, the parent node index of every synthetic child
    row (exactly one parent per child, as a foreign key has). ``y`` is the (soft) label of
    every synthetic row of ``target_table``: shape (n,) for regression / binary
    probabilities, (n, C) for class probabilities. ``blocks`` is the SBM block (cluster) of
    each synthetic node where the method has one. ``age`` holds, for graphs that carry row
    times, each node's age in days at the time of the label it serves (NaN: untimed), what
    a temporal model reads (``temporal.age_days``); it is stored and counted in ``nbytes``.
    With a ``codec`` (``feature_codec.FeatureCodec``), every ``x`` lies in the codec's
    per-table subspace and is stored, and counted, as its coefficients plus the codec.
    ``earlier`` holds further labelled examples of target nodes seen ``shift`` days before
    their own label time (``EarlierSeeds``, ``seed_views.py``): one stored history serves
    every label of its entity.
    """

    schema: GraphSchema
    target_table: str
    x: dict[str, np.ndarray]
    parents: dict[int, np.ndarray]
    y: np.ndarray
    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    age: dict[str, np.ndarray] = field(default_factory=dict)
    codec: FeatureCodec | None = None
    earlier: EarlierSeeds | None = None
    coef: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """The stored coefficients ``x`` was decoded from (``with_codec``): saved as they are, so a
    stored graph loads back bit for bit (re-encoding a decoded row may flip a float16 digit)."""

    def with_codec(self, codec: FeatureCodec | None) -> "SyntheticGraph":
        """This graph stored through ``codec``: each ``x`` replaced by what storing it keeps."""
        if codec is None:
            return self
        coef = {t: codec.encode(t, v) for t, v in self.x.items()}
        return replace(self, x={t: codec.decode(t, c) for t, c in coef.items()}, codec=codec, coef=coef)

    def coefficients(self, table: str) -> np.ndarray:
        """``table``'s rows as the codec stores them: the coefficients they were decoded from
        while those still decode to them, else their encoding."""
        c = self.coef.get(table)
        x = self.x[table]
        if c is not None and len(c) == len(x) and np.array_equal(self.codec.decode(table, c), x):
            return c
        return self.codec.encode(table, x)

    def num_nodes(self) -> dict[str, int]:
        return {t: int(self.x[t].shape[0]) for t in self.schema.tables}

    def num_examples(self) -> int:
        """Labelled examples a model trains on: one per target node, plus the earlier ones."""
        return len(self.y) + (0 if self.earlier is None else len(self.earlier))

    def fingerprint(self) -> str:
        """A digest of everything a model trained on this graph reads: equal digests, equal
        training (evaluation trains a graph published under two names once)."""
        digest = hashlib.sha256(json.dumps([self.schema.to_dict(), self.target_table]).encode())
        early = () if self.earlier is None else (self.earlier.node, self.earlier.shift, self.earlier.y)
        codec = () if self.codec is None else (*self.codec.mean.values(), *self.codec.basis.values())
        for a in (*self.x.values(), *self.parents.values(), self.y, *self.age.values(), *early, *codec):
            digest.update(np.ascontiguousarray(a).tobytes())
        return digest.hexdigest()

    def nbytes(self) -> int:
        """Storage of the distilled payload: features (float32, or the codec's coefficients
        and the codec itself), edges (int32), ages and labels (float32)."""
        if self.codec is None:
            total = sum(np.asarray(v, dtype=np.float32).nbytes for v in self.x.values())
        else:
            total = self.codec.nbytes() + sum(len(v) * self.codec.row_bytes(t) for t, v in self.x.items())
        total += sum(len(p) * 2 * 4 for p in self.parents.values())
        total += sum(np.asarray(v, dtype=np.float32).nbytes for v in self.age.values())
        total += 0 if self.earlier is None else self.earlier.nbytes()
        return int(total + np.asarray(self.y, dtype=np.float32).nbytes)

    def to_hetero(self):
        """The distilled graph as a PyG ``HeteroData`` with the same metadata as the REG."""
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for table in self.schema.tables:
            nt = self.schema.node_type(table)
            data[nt].x = torch.as_tensor(np.asarray(self.x[table]), dtype=torch.float32)
            data[nt].num_nodes = int(self.x[table].shape[0])
            if table in self.age:
                data[nt].age = torch.as_tensor(np.asarray(self.age[table]), dtype=torch.float32)
        for rel in self.schema.relations:
            parent = np.asarray(self.parents[rel.index], dtype=np.int64)
            child = np.arange(len(parent))
            keep = parent >= 0
            ei = torch.as_tensor(np.stack([child[keep], parent[keep]]), dtype=torch.long)
            fwd, rev = self.schema.edge_types(rel)
            data[fwd].edge_index = ei
            data[rev].edge_index = ei.flip(0)
        data[self.schema.node_type(self.target_table)].y = torch.as_tensor(
            np.asarray(self.y), dtype=torch.float32
        )
        return data

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tables = self.schema.tables
        if self.codec is None:
            arrays = {f"x_{i}": np.asarray(self.x[t]) for i, t in enumerate(tables)}
        else:
            arrays = {f"x_{i}": self.coefficients(t) for i, t in enumerate(tables)}
            arrays.update(self.codec.arrays(tables))
        arrays.update({f"parents_{j}": p for j, p in self.parents.items()})
        arrays.update({f"blocks_{i}": self.blocks[t] for i, t in enumerate(self.schema.tables) if t in self.blocks})
        arrays.update({f"age_{i}": self.age[t] for i, t in enumerate(self.schema.tables) if t in self.age})
        arrays["y"] = np.asarray(self.y)
        if self.earlier is not None:
            arrays.update(earlier_node=self.earlier.node, earlier_shift=self.earlier.shift, earlier_y=self.earlier.y)
        np.savez(path / "graph.npz", **arrays)
        meta = {"schema": self.schema.to_dict(), "target_table": self.target_table,
                "codec_precision": None if self.codec is None else self.codec.precision}
        (path / "graph.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: Path) -> "SyntheticGraph":
        path = Path(path)
        meta = json.loads((path / "graph.json").read_text())
        schema = GraphSchema.from_dict(meta["schema"])
        precision = meta.get("codec_precision")
        with np.load(path / "graph.npz") as z:
            codec = None if precision is None else FeatureCodec.from_arrays(schema.tables, z, precision)
            stored = {t: z[f"x_{i}"] for i, t in enumerate(schema.tables)}
            x = stored if codec is None else {t: codec.decode(t, c) for t, c in stored.items()}
            parents = {r.index: z[f"parents_{r.index}"] for r in schema.relations}
            blocks = {
                t: z[f"blocks_{i}"] for i, t in enumerate(schema.tables) if f"blocks_{i}" in z
            }
            age = {t: z[f"age_{i}"] for i, t in enumerate(schema.tables) if f"age_{i}" in z}
            y = z["y"]
            earlier = EarlierSeeds(z["earlier_node"], z["earlier_shift"], z["earlier_y"]) if "earlier_node" in z else None
        return cls(schema, meta["target_table"], x, parents, y, blocks, age, codec, earlier,
                   {} if codec is None else stored)
