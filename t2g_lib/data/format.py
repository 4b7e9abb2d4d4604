"""Read, validate and write datasets in the RelBench local format.

Everything t2g ships or imports is written here first, and everything downstream reads only
this format (see DESIGN.md, "On-disk input format")::

    <dataset>/manifest.yaml                 relbench.manifest.DatasetManifest
    <dataset>/db/<table>.parquet
    <dataset>/tasks/<task>/manifest.yaml    relbench.manifest.TaskManifest
    <dataset>/tasks/<task>/{train,val,test}.parquet

Validation raises :class:`DatasetError` naming the table and column, so a broken folder
fails here with a useful message rather than deep inside relbench or a model.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import relbench
import yaml
from relbench.base import Database, Table
from relbench.load import RelBenchDataset
from relbench.manifest import DatasetManifest, TableSpec, TaskManifest

from t2g_lib.data.errors import DatasetError

MANIFEST = "manifest.yaml"
DB_DIR = "db"
TASKS_DIR = "tasks"
SPLITS = ("train", "val", "test")
PARQUET_SUFFIX = ".parquet"
_MAX_FILE_NAME_BYTES = 255

PathLike = Union[str, Path]
TimestampLike = Union[str, pd.Timestamp]


def check_name(name: object, kind: str = "table") -> str:
    """Reject a table or task name that cannot be a file or folder name as is.

    relbench reads ``db/{name}.parquet`` and ``tasks/{name}/`` literally, so no escaping is
    possible: names are kept verbatim (spaces, dots, non-ASCII, SQL keywords are all fine)
    and only the ones no file system can hold are refused.
    """
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{kind} name must be a non-empty string, got {name!r}")
    where = {"table": name} if kind == "table" else {}
    if "/" in name or "\x00" in name:
        raise DatasetError(
            f"{kind} name {name!r} contains '/' or NUL, which cannot be part of a file name "
            "(relbench reads db/<table>.parquet literally)",
            **where,
        )
    if name in (".", ".."):
        raise DatasetError(f"{kind} name {name!r} is reserved by the file system", **where)
    if len((name + PARQUET_SUFFIX).encode("utf-8")) > _MAX_FILE_NAME_BYTES:
        raise DatasetError(f"{kind} name is longer than a file name may be", **where)
    return name


def table_file_name(name: str) -> str:
    """The parquet file name of table ``name``: the name itself plus ``.parquet``.

    Reversible by stripping the suffix; raises :class:`DatasetError` for names that are
    not valid file names (see :func:`check_name`).
    """
    return check_name(name) + PARQUET_SUFFIX


def format_timestamp(value: TimestampLike) -> str:
    """ISO text for a manifest timestamp: a bare date when it is midnight."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        raise DatasetError(f"split timestamp {value!r} must be timezone-naive")
    return str(ts.date()) if ts == ts.normalize() else ts.isoformat()


def parse_times(values: pd.Series) -> pd.Series:
    """A time column as tz-naive datetimes: text (ISO or any format pandas reads, as SQLite,
    CSV and many exports store times) is parsed, offsets converted to UTC; text that does not
    parse becomes NaT. ``validated_schema``'s ``time_columns`` check names such rows first."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        times = values
    else:
        text = values.where(values.isna(), values.astype(str))
        times = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(None)
    return times


def parse_time_columns(db: Database) -> Database:
    """``db`` with every time column as datetimes (:func:`parse_times`); the frames are copies."""
    tables = {}
    for name, table in db.table_dict.items():
        col = table.time_col
        if col is not None and col in table.df.columns and not pd.api.types.is_datetime64_dtype(table.df[col]):
            table = Table(
                df=table.df.assign(**{col: parse_times(table.df[col])}),
                fkey_col_to_pkey_table=table.fkey_col_to_pkey_table,
                pkey_col=table.pkey_col,
                time_col=col,
            )
        tables[name] = table
    return Database(tables)


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def read_manifest(path: PathLike) -> DatasetManifest:
    """The dataset manifest of folder ``path``, with structural errors as DatasetError."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {str(folder)!r} does not exist")
    file = folder / MANIFEST
    if not file.is_file():
        raise DatasetError(f"dataset folder {str(folder)!r} has no {MANIFEST}")
    try:
        manifest = DatasetManifest.load(file)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{file} is not a valid dataset manifest: {exc!r}") from exc
    for label, value in (("val", manifest.val_timestamp), ("test", manifest.test_timestamp)):
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{label}_timestamp {value!r} is not a timestamp") from exc
    if pd.Timestamp(manifest.val_timestamp) >= pd.Timestamp(manifest.test_timestamp):
        raise DatasetError(
            f"val_timestamp {manifest.val_timestamp} must be before test_timestamp "
            f"{manifest.test_timestamp}"
        )
    return manifest


def _check_specs(tables: Mapping[str, TableSpec]) -> None:
    for name, spec in tables.items():
        check_name(name)
        for col, parent in spec.fkeys.items():
            if parent not in tables:
                raise DatasetError(
                    f"foreign key to unknown table {parent!r}", table=name, column=col
                )


def check_time_col_name(table: str, col: str) -> None:
    """Refuse a time column name relbench cannot filter on."""
    # relbench's Table.upto filters with DataFrame.query(f"{time_col} <= @timestamp"),
    # which cannot parse some names ("my date", "class"); fail here, not there.
    probe = pd.DataFrame({col: pd.Series([], dtype="datetime64[ns]")})
    try:
        Table(df=probe, fkey_col_to_pkey_table={}, time_col=col).upto(pd.Timestamp(0))
    except Exception as exc:  # pandas raises SyntaxError, ValueError or KeyError here
        raise DatasetError(
            "relbench cannot filter on this time column name (Table.upto uses "
            f"DataFrame.query): {type(exc).__name__}",
            table=table,
            column=col,
        ) from exc


def _check_schema(table: str, spec: TableSpec, schema: pa.Schema) -> None:
    """The manifest's key and time columns exist in the table with usable types."""
    names = set(schema.names)
    for role, col in (
        [("primary key", spec.pkey), ("time column", spec.time_col)]
        + [("foreign key", c) for c in spec.fkeys]
    ):
        if col is not None and col not in names:
            raise DatasetError(f"{role} column is not in the parquet", table=table, column=col)
    if spec.pkey is not None and not pa.types.is_integer(schema.field(spec.pkey).type):
        raise DatasetError(
            f"primary key must be integer, not {schema.field(spec.pkey).type}",
            table=table,
            column=spec.pkey,
        )
    for col in spec.fkeys:
        typ = schema.field(col).type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_null(typ)):
            raise DatasetError(
                f"foreign key must hold integer row indices, not {typ}", table=table, column=col
            )
    if spec.time_col is not None:
        typ = schema.field(spec.time_col).type
        if not (_is_text(typ) or (pa.types.is_timestamp(typ) and typ.tz is None)):
            raise DatasetError(
                f"time column must be a timezone-naive timestamp or text, not {typ}",
                table=table,
                column=spec.time_col,
            )
        check_time_col_name(table, spec.time_col)


def _check_keys(
    table: str, spec: TableSpec, df: pd.DataFrame, sizes: Mapping[str, int]
) -> None:
    """The RelBench key contract on ``df`` (holding at least the key and time columns)."""
    if spec.pkey is not None:
        values = df[spec.pkey].to_numpy()
        bad = values != np.arange(len(values))
        if bad.any():
            raise DatasetError(
                "primary key must be 0..n-1 in row order (relbench's key contract)",
                table=table,
                column=spec.pkey,
                rows=np.flatnonzero(bad)[:5].tolist(),
            )
        if spec.time_col is not None:
            times = parse_times(df[spec.time_col])
            valid = times.notna().to_numpy()
            first_na = int(np.argmin(valid)) if not valid.all() else len(valid)
            if valid[first_na:].any() or not times.iloc[:first_na].is_monotonic_increasing:
                raise DatasetError(
                    "a keyed table must be sorted by its time column (missing times "
                    "last) so that relbench's upto() keeps a prefix of 0..n-1",
                    table=table,
                    column=spec.time_col,
                )
    for col, parent in spec.fkeys.items():
        fk = pd.to_numeric(df[col])
        bad = fk.notna() & ((fk < 0) | (fk >= sizes[parent]) | (fk % 1 != 0))
        if bad.any():
            raise DatasetError(
                f"foreign key values must be row indices of {parent!r} "
                f"(0..{sizes[parent] - 1}) or missing",
                table=table,
                column=col,
                rows=np.flatnonzero(bad.to_numpy())[:5].tolist(),
            )


def _check_task(tm: TaskManifest, manifest: DatasetManifest, where: str) -> None:
    try:
        tm.validate()
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    for table, col in (
        (tm.entity_table, tm.entity_col),
        (tm.src_entity_table, tm.src_entity_col),
        (tm.dst_entity_table, tm.dst_entity_col),
    ):
        if table is not None and table not in manifest.tables:
            raise DatasetError(f"{where}: entity table is unknown", table=table, column=col)
    for table, col in tm.remove_columns:
        if table not in manifest.tables:
            raise DatasetError(
                f"{where}: remove_columns names an unknown table", table=table, column=col
            )


def _parquet_schema(table: str, file: Path) -> tuple[pa.Schema, int]:
    """Schema and row count of a table's parquet file; an unreadable file names its table."""
    try:
        meta = pq.ParquetFile(file)
        return meta.schema_arrow, meta.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"parquet file {str(file)!r} cannot be read: {exc}", table=table) from exc


def _read_parquet(table: str, file: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_parquet(file, **kwargs)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"parquet file {str(file)!r} cannot be read: {exc}", table=table) from exc


def validate_dataset_folder(path: PathLike, check_contents: bool = True) -> DatasetManifest:
    """Check a dataset folder against its manifest before anything trusts it.

    ``check_contents=False`` checks structure only and leaves key and time values to the
    Great Expectations suites of ``validated_schema``, which report every defect at once.

    Structure (folder, manifest, one parquet per table, task manifests), column presence
    and types, foreign key targets and the RelBench key contract (pkey 0..n-1 in row
    order, fkeys in range or missing, keyed timed tables sorted). Reads only the key and
    time columns, so it is cheap enough to run on every load.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    _check_specs(manifest.tables)
    sizes: dict[str, int] = {}
    schemas: dict[str, pa.Schema] = {}
    for name, spec in manifest.tables.items():
        file = folder / DB_DIR / table_file_name(name)
        if not file.is_file():
            raise DatasetError(f"parquet file {str(file)!r} is missing", table=name)
        schemas[name], sizes[name] = _parquet_schema(name, file)
        _check_schema(name, spec, schemas[name])
    for name, spec in manifest.tables.items():
        cols = [c for c in (spec.pkey, spec.time_col, *spec.fkeys) if c is not None]
        if cols and check_contents:
            file = folder / DB_DIR / table_file_name(name)
            _check_keys(name, spec, _read_parquet(name, file, columns=cols), sizes)
    tasks_dir = folder / TASKS_DIR
    if tasks_dir.is_dir():
        for task_dir in sorted(tasks_dir.iterdir()):
            file = task_dir / MANIFEST
            if task_dir.name.startswith(".") or not file.is_file():
                continue
            try:
                tm = TaskManifest.load(file)
            except (yaml.YAMLError, TypeError, AttributeError) as exc:
                raise DatasetError(f"{file} is not a valid task manifest: {exc!r}") from exc
            _check_task(tm, manifest, f"task {task_dir.name!r}")
    return manifest


def read_tables(path: PathLike) -> dict[str, pd.DataFrame]:
    """The raw parquet of every manifest table, as stored (no relbench upto/correction).

    For loading into DuckDB and for validation, which must see the data exactly as written.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    return {
        name: _read_parquet(name, folder / DB_DIR / table_file_name(name))
        for name in manifest.tables
    }


def load_dataset(path: PathLike) -> RelBenchDataset:
    """``relbench.load_dataset`` on a local folder, after :func:`validate_dataset_folder`."""
    folder = Path(path)
    validate_dataset_folder(folder)
    return relbench.load_dataset(folder)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap ``tmp`` into ``final`` so readers never see a half-written folder."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


def plain_strings(df: pd.DataFrame) -> pd.DataFrame:
    # Stored as plain (object) strings: DuckDB cannot reliably ingest pandas StringDtype
    # (relbench.load._coerce_string_dtype does the same on read), and read_tables feeds DuckDB.
    cols = [c for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)]
    return df.astype({c: object for c in cols}) if cols else df


def write_dataset(
    path: PathLike,
    name: str,
    tables: Mapping[str, pd.DataFrame],
    specs: Mapping[str, TableSpec],
    val_timestamp: TimestampLike,
    test_timestamp: TimestampLike,
    description: Optional[str] = None,
) -> Path:
    """Write ``tables`` as a RelBench dataset folder at ``path`` and return it.

    Checks the specs and the key contract first, so nothing invalid reaches disk. The
    ``db/`` folder is swapped in whole and the manifest replaced atomically; existing
    ``tasks/`` are left alone (rewrite them with :func:`write_task` after changing data).
    """
    folder = Path(path)
    if set(tables) != set(specs):
        raise DatasetError(
            f"tables {sorted(set(tables) ^ set(specs))} have data or a spec but not both"
        )
    manifest = DatasetManifest(
        name=name,
        val_timestamp=format_timestamp(val_timestamp),
        test_timestamp=format_timestamp(test_timestamp),
        description=description,
        tables={t: specs[t] for t in tables},
    )
    if pd.Timestamp(manifest.val_timestamp) >= pd.Timestamp(manifest.test_timestamp):
        raise DatasetError(
            f"val_timestamp {manifest.val_timestamp} must be before test_timestamp "
            f"{manifest.test_timestamp}"
        )
    _check_specs(manifest.tables)
    arrow = {
        t: pa.Table.from_pandas(plain_strings(df), preserve_index=False)
        for t, df in tables.items()
    }
    sizes = {t: len(df) for t, df in tables.items()}
    for t, spec in manifest.tables.items():
        _check_schema(t, spec, arrow[t].schema)
        _check_keys(t, spec, tables[t], sizes)

    folder.mkdir(parents=True, exist_ok=True)
    tmp_db = folder / f".{DB_DIR}.tmp-{uuid.uuid4().hex[:8]}"
    tmp_db.mkdir()
    try:
        for t, table in arrow.items():
            pq.write_table(table, tmp_db / table_file_name(t))
        replace_dir(tmp_db, folder / DB_DIR)
    finally:
        if tmp_db.exists():
            shutil.rmtree(tmp_db)
    tmp_manifest = folder / f".{MANIFEST}.tmp"
    manifest.save(tmp_manifest)
    os.replace(tmp_manifest, folder / MANIFEST)
    return folder


def write_task(dataset_path: PathLike, tm: TaskManifest) -> Path:
    """Write task ``tm`` under ``tasks/<name>/`` with labels regenerated by relbench.

    Labels come from ``load_task(..., regenerate=True)`` -- the same SQL and split logic
    relbench uses to verify hosted labels -- and are stored in relbench's canonical order,
    so the stored parquet equals a later regeneration. Built in a hidden folder and
    swapped in, so a failing query leaves any previous version intact.
    """
    folder = Path(dataset_path).resolve()
    manifest = validate_dataset_folder(folder)
    check_name(tm.name, "task")
    _check_task(tm, manifest, f"task {tm.name!r}")
    tasks_dir = folder / TASKS_DIR
    tasks_dir.mkdir(exist_ok=True)
    tmp = tasks_dir / f".{tm.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tm.save(tmp / MANIFEST)
        try:
            task = relbench.load_dataset(folder).load_task(str(tmp), regenerate=True)
            db = task.get_db(upto_test_timestamp=False)
            labels = {
                split: task.get_table(split, mask_input_cols=False, db=db).df
                for split in SPLITS
            }
        except Exception as exc:  # duckdb, relbench split and SQL errors alike
            raise DatasetError(
                f"task {tm.name!r}: label generation failed: {type(exc).__name__}: {exc}",
                table=tm.entity_table,
                column=tm.target_col,
            ) from exc
        for split, df in labels.items():
            df.to_parquet(tmp / f"{split}{PARQUET_SUFFIX}", index=False)
        final = tasks_dir / tm.name
        replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
