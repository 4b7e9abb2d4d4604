"""Dataset discovery and content fingerprints (the source asset's data version)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from relbench.manifest import TableSpec

from t2g_lib.data.format import write_dataset
from t2g_lib.data.registry import (
    discover_datasets,
    fingerprint_dataset,
    fingerprint_tables,
    list_tasks,
)


def small(path: Path, extra: int = 0) -> Path:
    tables = {
        "a b": pd.DataFrame({"id": [0, 1, 2], "v": [1.0, 2.0, 3.0 + extra]}),
        "order": pd.DataFrame({"aid": [0, 2, 1, 1], "t": pd.to_datetime(["2020-01-01"] * 4)}),
    }
    specs = {"a b": TableSpec(pkey="id"), "order": TableSpec(time_col="t", fkeys={"aid": "a b"})}
    return write_dataset(path, "small", tables, specs, "2020-06-01", "2020-09-01")


def test_discover_and_list_tasks(tmp_path: Path) -> None:
    small(tmp_path / "one")
    small(tmp_path / "two")
    (tmp_path / "not a dataset").mkdir()
    (tmp_path / ".hidden").mkdir()
    shutil.copy(tmp_path / "one" / "manifest.yaml", tmp_path / ".hidden" / "manifest.yaml")
    assert discover_datasets(tmp_path) == {"one": tmp_path / "one", "two": tmp_path / "two"}
    assert discover_datasets(tmp_path / "missing") == {}
    assert list_tasks(tmp_path / "one") == []
    (tmp_path / "one" / "tasks" / "b").mkdir(parents=True)
    (tmp_path / "one" / "tasks" / "b" / "manifest.yaml").write_text("name: b\n")
    (tmp_path / "one" / "tasks" / "a" / "x").mkdir(parents=True)  # no manifest: not a task
    assert list_tasks(tmp_path / "one") == ["b"]


def test_fingerprints(tmp_path: Path) -> None:
    a, b = small(tmp_path / "a"), small(tmp_path / "b")
    # content only: same bytes in another folder, and stable across calls
    assert fingerprint_dataset(a) == fingerprint_dataset(b) == fingerprint_dataset(a)
    before = fingerprint_tables(a)
    small(a, extra=1)  # one value of one table changes
    after = fingerprint_tables(a)
    assert fingerprint_dataset(a) != fingerprint_dataset(b)
    assert before["a b"] != after["a b"] and before["order"] == after["order"]
    # task files count too
    fp = fingerprint_dataset(b)
    (b / "tasks" / "t").mkdir(parents=True)
    (b / "tasks" / "t" / "manifest.yaml").write_text("name: t\n")
    assert fingerprint_dataset(b) != fp
