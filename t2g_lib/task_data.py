"""A task's label tables and facts, read once from the RelBench folder, plus budgets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


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


def load_task_data(dataset_path: Path, task_name: str) -> TaskData:
    """Labels of every split (test unmasked: evaluation needs its targets)."""
    import relbench

    from t2g_lib.data.format import validate_dataset_folder

    # Structure only: key and time values were judged by validated_schema, whose bounds
    # (e.g. a few dangling foreign keys) every later stage accepts.
    validate_dataset_folder(dataset_path, check_contents=False)
    ds = relbench.load_dataset(dataset_path)
    task = ds.load_task(task_name)
    splits = {s: task.get_table(s, mask_input_cols=False).df.reset_index(drop=True) for s in ("train", "val", "test")}
    return TaskData(
        name=task_name,
        task_type=task.task_type.value,
        entity_table=task.entity_table,
        entity_col=task.entity_col,
        time_col=task.time_col,
        target_col=task.target_col,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
    )


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


def check_task_labels(dataset_path: Path, db) -> "CheckResult":
    """The ``task_labels`` check: every task's label tables reference existing entities.

    One result over all tasks of the database, so a database-level gate covers them all.
    """
    import relbench

    from t2g_lib.data.registry import list_tasks
    from t2g_lib.validation import CheckResult, check_labels

    ds = relbench.load_dataset(dataset_path)  # stored labels only: the database may be broken
    results = []
    for name in list_tasks(dataset_path):
        task = ds.load_task(name)
        tables = {s: task.get_table(s, mask_input_cols=False).df for s in ("train", "val", "test")}
        n_entities = len(db.table_dict[task.entity_table].df)
        results.append(check_labels(tables, n_entities, task.entity_col, task.time_col, task.target_col, name))
    failed = [r for r in results if not r.passed]
    return CheckResult(
        check="task_labels",
        passed=not failed,
        severity="ERROR",
        message="; ".join(r.message for r in failed) if failed else f"labels of {len(results)} task(s) are consistent",
        failures=[f for r in results for f in r.failures],
        metadata={"tasks": len(results)},
    )


def hidden_columns(dataset_path: Path) -> set[tuple[str, str]]:
    """Columns any task of the database must not see (its manifest's ``remove_columns``).

    Tokens and pretraining are shared by all tasks of a database, so they leave out the
    union: a column that leaks one task's label is never a feature.
    """
    from relbench.manifest import TaskManifest

    from t2g_lib.data.registry import list_tasks

    hidden: set[tuple[str, str]] = set()
    for name in list_tasks(dataset_path):
        tm = TaskManifest.load(Path(dataset_path) / "tasks" / name / "manifest.yaml")
        hidden |= {(str(t), str(c)) for t, c in tm.remove_columns}
    return hidden


def column_types(schema) -> dict[str, dict[str, str]]:
    """table -> column -> semantic type name, the form the tokenizers take."""
    return {t.name: {c.name: c.stype.value for c in t.columns} for t in schema.tables.values()}
