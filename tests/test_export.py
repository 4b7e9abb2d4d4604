"""Export of a distilled graph: RelBench folder round trip, DuckDB file, PyG files, odd names."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import relbench
import torch
from relbench.base import Database, Table
from relbench.manifest import DatasetManifest, TableSpec, TaskManifest

from t2g_lib.data.duck import schema_name
from t2g_lib.data.sql import quote_ident
from t2g_lib.export import export_distilled
from t2g_lib.graph import EarlierSeeds, SyntheticGraph
from t2g_lib.sbm import budget_for, generate_sbm

VAL, TEST = pd.Timestamp("2021-01-01"), pd.Timestamp("2021-06-01")
PLAIN = {"child": "orders", "parent": "items", "target": "users", "fk_parent": "item_id", "fk_target": "user_id"}
ODD = {"child": "order", "parent": "my table.v2", "target": "naïve", "fk_parent": "type", "fk_target": "user id"}


def make_source(root: Path, names: dict[str, str], seed: int = 0) -> Database:
    """A 3-table RelBench folder under ``root`` (child -> parent, child -> target)."""
    rng = np.random.default_rng(seed)
    n = {names["child"]: 2000, names["parent"]: 200, names["target"]: 300}
    db = Database({
        names["target"]: Table(pd.DataFrame({"pk": np.arange(300), "age": rng.normal(size=300)}), {}, "pk"),
        names["parent"]: Table(pd.DataFrame({"pk": np.arange(200), "price": rng.normal(size=200)}), {}, "pk"),
        names["child"]: Table(pd.DataFrame({
            "pk": np.arange(2000),
            names["fk_parent"]: rng.integers(0, 200, 2000),
            names["fk_target"]: rng.integers(0, 300, 2000),
            "ts": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 500, 2000), unit="D"),
        }), {names["fk_parent"]: names["parent"], names["fk_target"]: names["target"]}, "pk", "ts"),
    })
    # Written by hand, not by ``write_dataset``: the keyed child table is deliberately not
    # sorted by time, which the writer's key contract refuses but export must still handle.
    (root / "db").mkdir(parents=True)
    for t, table in db.table_dict.items():
        table.df.to_parquet(root / "db" / f"{t}.parquet")
    DatasetManifest(
        name="src", val_timestamp=VAL.isoformat(), test_timestamp=TEST.isoformat(),
        tables={t: TableSpec(tb.pkey_col, tb.time_col, dict(tb.fkey_col_to_pkey_table)) for t, tb in db.table_dict.items()},
    ).save(root / "manifest.yaml")
    assert {t: len(tb.df) for t, tb in db.table_dict.items()} == n
    return db


def distill(db: Database, target: str, seed: int = 0, n_classes: int | None = None) -> SyntheticGraph:
    rng = np.random.default_rng(seed)
    labels = {t: rng.integers(0, 3, len(tb.df)) for t, tb in db.table_dict.items()}
    cent = {t: rng.normal(size=(3, 4)) for t in db.table_dict}
    budgets = budget_for(db, "0.05")
    g = generate_sbm(db, labels, cent, budgets, target, seed=seed)
    n = budgets[target]
    g.y = rng.random(n).astype(np.float32) if n_classes is None else rng.dirichlet(np.ones(n_classes), n).astype(np.float32)
    return g


def task_manifest(names: dict[str, str], target_col: str = "churn", task_type: str = "binary_classification") -> TaskManifest:
    return TaskManifest(
        name="churn", kind="forecast", task_type=task_type, entity_table=names["target"],
        entity_col=names["fk_target"], target_col=target_col, time_col="timestamp", timedelta="30 days",
        sql="SELECT 1",
    )


def check_export(tmp_path: Path, names: dict[str, str], name: str, target_col: str) -> None:
    db = make_source(tmp_path / "src", names)
    g = distill(db, names["target"])
    info = export_distilled(g, tmp_path / "out", name, task_manifest(names, target_col), tmp_path / "src", VAL, TEST)
    nodes = g.num_nodes()

    ds = relbench.load_dataset(info.relbench_dir)
    db2 = ds.get_db()
    assert {t: len(tb.df) for t, tb in db2.table_dict.items()} == nodes == info.nodes
    for t, tb in db2.table_dict.items():
        assert (tb.df[tb.pkey_col].to_numpy() == np.arange(nodes[t])).all()
        assert tb.df[[f"f{i}" for i in range(4)]].dtypes.eq(np.float32).all()
        np.testing.assert_array_equal(tb.df[[f"f{i}" for i in range(4)]].to_numpy(), g.x[t])
        for col, parent in tb.fkey_col_to_pkey_table.items():  # every FK resolves
            fk = tb.df[col]
            assert fk.notna().all() and fk.between(0, nodes[parent] - 1).all(), (t, col)
    rels = {(r.child, r.fkey_col, r.parent) for r in g.schema.relations}
    assert {(t, c, p) for t, tb in db2.table_dict.items() for c, p in tb.fkey_col_to_pkey_table.items()} == rels
    target = db2.table_dict[names["target"]].df
    np.testing.assert_allclose(target[target_col].to_numpy(), g.y)

    task = ds.load_task("churn")
    train = task.get_table("train").df
    assert len(train) == nodes[names["target"]]
    np.testing.assert_array_equal(train[names["fk_target"]].to_numpy(), np.arange(len(train)))
    np.testing.assert_allclose(train[target_col].to_numpy(), g.y)
    assert train["timestamp"].nunique() == 1 and train["timestamp"].iloc[0] == VAL - pd.Timedelta("30 days")
    assert target_col not in task.get_db().table_dict[names["target"]].df  # label hidden from inputs

    assert info.duckdb_schema == schema_name(name)
    con = duckdb.connect(str(info.duckdb_path), read_only=True)
    try:
        for t in nodes:
            (count,) = con.execute(f"SELECT count(*) FROM {quote_ident(info.duckdb_schema)}.{quote_ident(t)}").fetchone()
            assert count == nodes[t], t
        listed = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [info.duckdb_schema]).fetchall()
        assert sorted(r[0] for r in listed) == sorted(nodes)
    finally:
        con.close()

    hetero = torch.load(info.pyg_path, weights_only=False)
    assert hetero.metadata() == g.schema.metadata()
    back = SyntheticGraph.load(info.graph_dir)
    assert all(np.array_equal(back.parents[j], g.parents[j]) for j in g.parents)
    assert info.payload_bytes == g.nbytes()
    on_disk = sum(p.stat().st_size for p in (info.relbench_dir / "db").glob("*.parquet"))
    assert info.distilled_bytes == on_disk
    assert info.compression_ratio == pytest.approx(info.source_bytes / on_disk) and info.compression_ratio > 1


def test_export_round_trip(tmp_path):
    check_export(tmp_path, PLAIN, "distilled", "churn")


def test_export_odd_names(tmp_path):
    """Tables ``order``, ``my table.v2``, ``naïve``; FK columns ``type``, ``user id``; a label
    column called ``block`` (the generated block column steps aside); a schema name with
    spaces, a dot and a quote."""
    check_export(tmp_path, ODD, 'dist v1."ü"', "block")
    df = pd.read_parquet(tmp_path / "out" / "relbench" / "db" / "naïve.parquet")
    assert list(df.columns) == ["id", "f0", "f1", "f2", "f3", "block_", "block"]


def test_reexport_replaces_and_multiclass_labels(tmp_path):
    db = make_source(tmp_path / "src", PLAIN)
    export_distilled(distill(db, "users", seed=1), tmp_path / "out", "d", None, None, VAL, TEST)
    g = distill(db, "users", seed=2, n_classes=3)
    info = export_distilled(g, tmp_path / "out", "d", task_manifest(PLAIN, "cls", "multiclass_classification"),
                            None, VAL, TEST)
    assert info.source_bytes is None and info.compression_ratio is None
    ds = relbench.load_dataset(info.relbench_dir)
    labels = np.stack(ds.get_db().table_dict["users"].df["cls"].to_numpy())
    np.testing.assert_allclose(labels, g.y)
    assert np.stack(ds.load_task("churn").get_table("train").df["cls"].to_numpy()).shape == g.y.shape


def test_unsafe_table_name_is_rejected(tmp_path):
    names = {**PLAIN, "parent": "a/b"}
    rng = np.random.default_rng(0)
    db = Database({
        "a/b": Table(pd.DataFrame({"pk": np.arange(5)}), {}, "pk"),
        "users": Table(pd.DataFrame({"pk": np.arange(5)}), {}, "pk"),
        "orders": Table(pd.DataFrame({"pk": np.arange(9), "item_id": rng.integers(0, 5, 9),
                                      "user_id": rng.integers(0, 5, 9)}),
                        {"item_id": "a/b", "user_id": "users"}, "pk"),
    })
    g = distill(db, names["target"])
    with pytest.raises(ValueError, match="'a/b'.*file name"):
        export_distilled(g, tmp_path / "out", "d", None, None, VAL, TEST)


def test_a_coded_graph_exports_its_coefficients_and_the_codec_that_decodes_them(tmp_path):
    from t2g_lib.feature_codec import FeatureCodec

    names = PLAIN
    db = make_source(tmp_path / "src", names)
    rng = np.random.default_rng(0)
    codec = FeatureCodec.fit({t: rng.normal(size=(50, 4)) for t in db.table_dict}, 2)
    g = distill(db, names["target"]).with_codec(codec)
    info = export_distilled(g, tmp_path / "out", "coded", None, tmp_path / "src", VAL, TEST)
    db2 = relbench.load_dataset(info.relbench_dir).get_db()
    back = SyntheticGraph.load(tmp_path / "out" / "graph")
    for t, tb in db2.table_dict.items():
        coef = tb.df[["c0", "c1"]].to_numpy()
        assert "f0" not in tb.df and coef.dtype == np.float32
        np.testing.assert_allclose(codec.decode(t, coef), g.x[t], atol=1e-6)  # the codec decodes them
        np.testing.assert_allclose(back.x[t], g.x[t], atol=1e-6)


def test_earlier_labels_are_exported_as_training_labels_before_the_others(tmp_path):
    """A graph whose nodes carry earlier labels (entity histories) exports every one of
    them, each its shift in days before the time of the nodes' own labels."""
    db = make_source(tmp_path / "src", PLAIN)
    g = distill(db, PLAIN["target"])
    g.earlier = EarlierSeeds(np.array([0, 0, 2], dtype=np.int32), np.array([365, 730, 30.5], dtype=np.float32),
                             np.array([1.0, 0.0, 1.0], dtype=np.float32))
    info = export_distilled(g, tmp_path / "out", "hist", task_manifest(PLAIN), tmp_path / "src", VAL, TEST)
    train = relbench.load_dataset(info.relbench_dir).load_task("churn").get_table("train").df
    assert len(train) == len(g.y) + 3
    early = train.iloc[len(g.y):]
    when = VAL - pd.Timedelta("30 days")
    assert list(early[PLAIN["fk_target"]]) == [0, 0, 2]
    assert list(when - early["timestamp"]) == [pd.Timedelta(days=365), pd.Timedelta(days=730), pd.Timedelta(hours=732)]
    np.testing.assert_allclose(early["churn"].to_numpy(), [1.0, 0.0, 1.0])
    assert SyntheticGraph.load(info.graph_dir).earlier.node.tolist() == [0, 0, 2]


def test_a_table_without_rows_is_exported_empty(tmp_path):
    """A coreset may hold no row of a table its examples never reach (Lahman's Parks): the
    table is still written, with its columns and no rows."""
    db = make_source(tmp_path / "src", PLAIN)
    g = distill(db, PLAIN["target"])
    child = PLAIN["child"]
    g.x[child] = g.x[child][:0]
    for per_table in (g.blocks, g.age):
        if child in per_table:
            per_table[child] = per_table[child][:0]
    for rel in g.schema.relations:
        if rel.child == child:
            g.parents[rel.index] = g.parents[rel.index][:0]
    info = export_distilled(g, tmp_path / "out", "empty", task_manifest(PLAIN), tmp_path / "src", VAL, TEST)
    tables = relbench.load_dataset(info.relbench_dir).get_db().table_dict
    assert len(tables[child].df) == 0 and {f"f{i}" for i in range(4)} <= set(tables[child].df.columns)
    assert len(tables[PLAIN["target"]].df) == len(g.y)


def test_a_row_whose_parent_is_not_in_the_graph_exports_a_missing_key(tmp_path):
    """A coreset row whose parent lies beyond the sampled hops has parent -1: the export
    writes a missing key (RelBench reads it as no parent); below -1 is still refused."""
    db = make_source(tmp_path / "src", PLAIN)
    g = distill(db, PLAIN["target"])
    rel = next(r for r in g.schema.relations if r.child == PLAIN["child"])
    g.parents[rel.index] = np.asarray(g.parents[rel.index]).copy()
    g.parents[rel.index][:2] = -1
    info = export_distilled(g, tmp_path / "out", "orphans", None, tmp_path / "src", VAL, TEST)
    fk = relbench.load_dataset(info.relbench_dir).get_db().table_dict[PLAIN["child"]].df[rel.fkey_col]
    assert fk.isna().sum() == 2 and fk.iloc[2:].notna().all()
    g.parents[rel.index][0] = -2
    with pytest.raises(ValueError, match="or -1 for none"):
        export_distilled(g, tmp_path / "out2", "orphans", None, tmp_path / "src", VAL, TEST)
