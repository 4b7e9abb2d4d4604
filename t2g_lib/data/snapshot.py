"""The snapshot of a dataset folder in DuckDB: what every stage after ``raw_tables`` reads.

Tables, label tables and task manifests are read from the folder once, together, and
written to DuckDB (one schema for the tables, one for the labels), so a file changed later
cannot give two stages two different databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from t2g_lib.data.duck import write_labels, write_tables
from t2g_lib.data.format import read_tables, validate_dataset_folder
from t2g_lib.data.registry import fingerprint_dataset


@dataclass
class Snapshot:
    """What was snapshotted: the manifest, task manifests, the source's fingerprint and sizes."""

    manifest: dict
    tasks: dict[str, dict]
    fingerprint: str
    path: str
    sizes: pd.DataFrame  # table, rows, columns

    def summary(self) -> dict:
        """The value ``raw_tables`` hands to later stages (the frames stay in DuckDB)."""
        return {"manifest": self.manifest, "fingerprint": self.fingerprint, "path": self.path, "tasks": self.tasks}


def take_snapshot(conn: duckdb.DuckDBPyConnection, database: str, path: Path) -> Snapshot:
    """Check the folder's structure, then load its tables and task labels into DuckDB."""
    from t2g_lib.task_data import read_task_labels

    manifest = validate_dataset_folder(path, check_contents=False)
    tables = read_tables(path)
    tasks = read_task_labels(path)
    write_tables(conn, database, tables)
    write_labels(conn, database, {name: labels for name, (_, labels) in tasks.items()})
    sizes = pd.DataFrame({"table": list(tables), "rows": [len(df) for df in tables.values()],
                          "columns": [df.shape[1] for df in tables.values()]})
    return Snapshot(manifest.to_dict(), {name: tm for name, (tm, _) in tasks.items()},
                    fingerprint_dataset(path), str(path), sizes)
