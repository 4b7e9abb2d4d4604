"""Find dataset folders and fingerprint their content.

A dataset folder is a Dagster partition; its fingerprint is the source asset's data
version, so re-distillation runs exactly when the bytes on disk change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator, Union

from t2g_lib.data.format import DB_DIR, MANIFEST, TASKS_DIR, read_manifest, table_file_name

PathLike = Union[str, Path]
_CHUNK = 1 << 20


def discover_datasets(data_dir: PathLike) -> dict[str, Path]:
    """Every subfolder of ``data_dir`` holding a manifest.yaml, keyed by folder name.

    Hidden folders (in-progress writes) are skipped; a missing ``data_dir`` holds nothing.
    """
    root = Path(data_dir)
    if not root.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    }


def missing_task(database: str, task: str, tasks) -> str:
    """The error naming a task ``database`` lacks and the tasks it has (CLI and UI say the same)."""
    return f"database {database!r} has no task {task!r} (its tasks: {', '.join(tasks) or 'none'})"


def list_tasks(dataset_path: PathLike) -> list[str]:
    """Names of the tasks under ``tasks/`` that have a manifest, sorted."""
    tasks = Path(dataset_path) / TASKS_DIR
    if not tasks.is_dir():
        return []
    return sorted(
        p.name
        for p in tasks.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def _update_file(h: "hashlib._Hash", label: str, path: Path) -> None:
    # Length-prefixed label and size, so moving bytes between files changes the hash.
    h.update(f"{len(label)}:{label}:{path.stat().st_size}:".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)


def _dataset_files(folder: Path) -> Iterator[tuple[str, Path]]:
    manifest = read_manifest(folder)
    yield MANIFEST, folder / MANIFEST
    for name in sorted(manifest.tables):
        file = table_file_name(name)
        yield f"{DB_DIR}/{file}", folder / DB_DIR / file
    for task in list_tasks(folder):
        task_dir = folder / TASKS_DIR / task
        for p in sorted(task_dir.iterdir()):
            if p.is_file() and (p.name == MANIFEST or p.suffix == ".parquet"):
                yield f"{TASKS_DIR}/{task}/{p.name}", p


def fingerprint_dataset(path: PathLike) -> str:
    """sha256 over the manifest, every table's parquet and every task's files.

    Files are streamed in 1 MiB chunks in a fixed order (sorted names), so the result
    depends on content only, not on directory listing order or file timestamps.
    """
    h = hashlib.sha256()
    for label, file in _dataset_files(Path(path)):
        _update_file(h, label, file)
    return h.hexdigest()


def fingerprint_tables(path: PathLike) -> dict[str, str]:
    """Per-table sha256 over the table's manifest spec and its parquet bytes.

    Lets a consumer tell which tables changed, not just that the dataset did.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    out = {}
    for name, spec in manifest.tables.items():
        h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
        _update_file(h, name, folder / DB_DIR / table_file_name(name))
        out[name] = h.hexdigest()
    return out
