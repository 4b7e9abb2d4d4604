"""A task's label tables and facts, read once from the RelBench folder, plus budgets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from relbench.manifest import TaskManifest

if TYPE_CHECKING:
    from t2g_lib.validation import CheckResult


@dataclass
class TaskData:
    """Everything a task-level stage needs to know about the prediction task."""

    name: str
    task_type: str
    entity_table: str
    entity_col: str
    time_col: str
    target_col: str
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    window: pd.Timedelta | None = None
    """The task's forecast window (the manifest's ``timedelta``), when it has one."""


SPLITS = ("train", "val", "test")


def with_val_sample(task: TaskData, max_rows: int | None, seed: int) -> TaskData:
    """``task`` with at most ``max_rows`` of its val labels, drawn with ``seed`` and kept in
    their order (the task itself when it has no more, or ``max_rows`` is None): what
    distillation selects its checkpoints on, bounded whatever the database's size."""
    if max_rows is None or len(task.val) <= max_rows:
        return task
    rows = np.sort(np.random.default_rng([seed, 17]).choice(len(task.val), size=max_rows, replace=False))
    return replace(task, val=task.val.iloc[rows].reset_index(drop=True))


def read_task_labels(dataset_path: Path) -> dict[str, tuple[dict, dict[str, pd.DataFrame]]]:
    """Every task of a dataset folder: its manifest (as a dict) and its stored label tables.

    What ``raw_tables`` snapshots next to the tables, so that every later stage reads the
    labels and manifests of the same moment as the rows.
    """
    import relbench

    from t2g_lib.data.registry import list_tasks

    ds = relbench.load_dataset(dataset_path)  # stored labels only: validation judges them
    out = {}
    for name in list_tasks(dataset_path):
        task = ds.load_task(name)
        manifest = TaskManifest.load(Path(dataset_path) / "tasks" / name / "manifest.yaml")
        out[name] = (manifest.to_dict(), {s: task.get_table(s, mask_input_cols=False).df for s in SPLITS})
    return out


def task_from_snapshot(name: str, manifest: dict, labels: dict[str, pd.DataFrame]) -> TaskData:
    """The task object of one snapshotted task (labels of every split, test unmasked)."""
    tm = TaskManifest.from_dict(manifest)
    splits = {s: labels[s].reset_index(drop=True) for s in SPLITS}
    window = pd.Timedelta(tm.timedelta) if tm.timedelta else None
    return TaskData(name, tm.task_type, tm.entity_table, tm.entity_col, tm.time_col, tm.target_col,
                    splits["train"], splits["val"], splits["test"], window)


def parse_budget(budget: str) -> dict:
    """``"0.01"`` -> a ratio of every table; ``"n200"`` -> at most 200 nodes per table."""
    text = str(budget).strip()
    try:
        if text.startswith("n"):
            count = int(text[1:])
            if count < 1:
                raise ValueError
            return {"count": count}
        ratio = float(text)
        if not 0 < ratio <= 1:
            raise ValueError
        return {"ratio": ratio}
    except ValueError:
        raise ValueError(
            f"budget {budget!r} is neither a ratio in (0, 1] (e.g. '0.01') nor a count 'n<int>' (e.g. 'n200')"
        ) from None


def check_task_labels(tasks: dict[str, tuple[dict, dict[str, pd.DataFrame]]], db) -> "CheckResult":
    """The ``task_labels`` check: every task's label tables reference existing entities.

    One result over all tasks of the database (``read_task_labels``' snapshot), so a
    database-level gate covers them all.
    """
    from t2g_lib.validation import CheckResult, check_labels

    results = []
    for name, (manifest, labels) in tasks.items():
        tm = TaskManifest.from_dict(manifest)
        n_entities = len(db.table_dict[tm.entity_table].df)
        results.append(check_labels(labels, n_entities, tm.entity_col, tm.time_col, tm.target_col, name))
    failed = [r for r in results if not r.passed]
    return CheckResult(
        check="task_labels",
        passed=not failed,
        severity="ERROR",
        message="; ".join(r.message for r in failed) if failed else f"labels of {len(results)} task(s) are consistent",
        failures=[f for r in results for f in r.failures],
        metadata={"tasks": len(results)},
    )


def hidden_columns(manifests: dict[str, dict]) -> set[tuple[str, str]]:
    """Columns any task of the database must not see (its manifests' ``remove_columns``).

    Tokens and pretraining are shared by all tasks of a database, so they leave out the
    union: a column that leaks one task's label is never a feature.
    """
    hidden: set[tuple[str, str]] = set()
    for manifest in manifests.values():
        hidden |= {(str(t), str(c)) for t, c in TaskManifest.from_dict(manifest).remove_columns}
    return hidden


def column_types(schema) -> dict[str, dict[str, str]]:
    """table -> column -> semantic type name, the form the tokenizers take."""
    return {t.name: {c.name: c.stype.value for c in t.columns} for t in schema.tables.values()}
