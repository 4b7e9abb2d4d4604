"""Great Expectations suites that gate training on a relational database.

Stage 2 of the pipeline (`validated_schema`): each check family runs one GE suite per table
(pandas execution engine, ephemeral context, no files) and turns GE's results into a
`CheckResult` whose failures name the table, the column and example rows, so that a blocking
Dagster asset check can say exactly what is broken.  Pandas is only used around GE: to choose
expectation parameters (a column's dominant Python type), to present datetimes GE can compare,
and to fetch example rows at the positions GE reports.

relbench's key contract: a primary key is the row position 0..n-1 and a foreign key holds
parent row positions.  Under it "the value is a parent key" is "the value is an integer in
0..n_parent-1", which GE checks through one small custom expectation,
``ExpectColumnValuesToBeRowIndices``; GE's own ``ExpectColumnValuesToBeInSet`` with the parent
keys as value set costs about 0.3 s per thousand parent keys in GE's per-expectation overhead
(28 s for a 100k-row parent), too slow for real databases.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.data.format import parse_times

ERROR = "ERROR"
WARN = "WARN"
#: Example rows kept per failure.
EXAMPLE_ROWS = 5
#: Failures spelled out in a CheckResult's message.
MESSAGE_FAILURES = 3
#: Example values GE returns per expectation (distinct duplicates need more than 5 rows).
_PARTIAL_VALUES = 20
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": _PARTIAL_VALUES}
#: Sampled values used to find an object column's dominant Python type.
_TYPE_SAMPLE = 10_000
#: GE type names (`ExpectColumnValuesToBeInTypeList`) per family of Python value types.
_TYPE_LISTS: dict[str, list[str]] = {
    "str": ["str"],
    "number": [
        "int", "float", "int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32",
    ],
    "bool": ["bool"],
    "bytes": ["bytes"],
    "Timestamp": ["Timestamp"],
    "list": ["list"],
    "dict": ["dict"],
}


@dataclass
class CheckResult:
    """Outcome of one check family over a database.

    `severity` is what a failure of this family means (ERROR blocks training, WARN does
    not).  Each failure is a dict with `table`, `column` (None for table-level problems),
    `rows` (up to 5 examples, each ``{"row": position, "values": {column: value}}`` with
    plain JSON-safe values) and a human `detail`.  `metadata` holds the numbers per table
    (per split for labels), also JSON-safe.
    """

    check: str
    passed: bool
    severity: str
    message: str
    failures: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class _GE(NamedTuple):
    gx: Any
    row_indices: type
    batches: Any


@functools.cache
def _ge() -> _GE:
    """Import GE once, quietly, and set up what every check reuses: the row-index
    expectation (GE registers expectation and metric classes globally, so they must be
    created exactly once) and a batch definition on an ephemeral context (creating a context
    costs ~0.2 s of YAML serialization, more than validating a 100k-row table)."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (
        ColumnMapMetricProvider,
        column_condition_partial,
    )

    class ColumnValuesRowIndex(ColumnMapMetricProvider):
        condition_metric_name = "column_values.t2g_row_index"
        condition_value_keys = ("n_rows",)

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: pd.Series, n_rows: int, **kwargs: Any) -> pd.Series:
            values = pd.to_numeric(column, errors="coerce")
            return values.between(0, n_rows - 1) & (values % 1 == 0)

    class ExpectColumnValuesToBeRowIndices(ColumnMapExpectation):
        """Non-null values are row positions 0..n_rows-1 of a table (relbench keys)."""

        n_rows: int
        map_metric = "column_values.t2g_row_index"
        success_keys = ("n_rows", "mostly")
        args_keys = ("column", "n_rows")

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    batches = (
        context.data_sources.add_pandas("t2g")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    return _GE(gx, ExpectColumnValuesToBeRowIndices, batches)


def _validate(df: pd.DataFrame, expectations: Sequence[Any]) -> list[Any]:
    """Run the expectations as one GE suite on `df`; results in the given order.

    GE fingerprints every batch by hashing all of it, so callers pass only the columns the
    expectations read (hashing 100k strings costs more than checking them)."""
    ge = _ge()
    batch = ge.batches.get_batch(batch_parameters={"dataframe": df})
    suite = ge.gx.ExpectationSuite(name="t2g")
    for order, expectation in enumerate(expectations):
        expectation.meta = {"t2g_order": order}
        suite.add_expectation(expectation)
    results = batch.validate(suite, result_format=_RESULT_FORMAT).results
    return sorted(results, key=lambda r: r.expectation_config.meta["t2g_order"])


def _positional(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with index 0..n-1, so GE's unexpected indices are row positions."""
    index = df.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return df
    return df.reset_index(drop=True)


def _plain(value: Any) -> Any:
    """A JSON-safe Python value for failures and metadata."""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _examples(values: Sequence[Any], limit: int = EXAMPLE_ROWS) -> list[Any]:
    """Distinct plain example values, first occurrences first."""
    seen: list[Any] = []
    for value in values:
        value = _plain(value)
        if value not in seen:
            seen.append(value)
        if len(seen) == limit:
            break
    return seen


def _failure(
    table: str | None,
    column: str | None,
    detail: str,
    df: pd.DataFrame | None = None,
    positions: Sequence[int] = (),
) -> dict[str, Any]:
    """A failure dict with up to `EXAMPLE_ROWS` example rows of `df` at `positions`."""
    rows = []
    if df is not None:
        columns = [str(c) for c in df.columns]
        for position in [int(p) for p in positions[:EXAMPLE_ROWS]]:
            record = df.iloc[position].tolist()
            values = {c: _plain(v) for c, v in zip(columns, record)}
            rows.append({"row": position, "values": values})
    return {"table": table, "column": column, "rows": rows, "detail": detail}


def _raised(result: Any) -> str | None:
    """GE's exception message when the expectation could not be evaluated."""
    info = result.exception_info or {}
    candidates = [info, *[v for v in info.values() if isinstance(v, dict)]]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            return str(candidate.get("exception_message"))
    return None


def _count(result: Any) -> int:
    return int(result.result.get("unexpected_count") or 0)


def _failure_from(
    result: Any,
    table: str,
    column: str,
    df: pd.DataFrame,
    what: str,
    note: str = "",
    examples: list[Any] | None = None,
) -> dict[str, Any] | None:
    """The failure for an unsuccessful GE result, None for a successful one.

    Example rows are taken from `df` (the whole table) at GE's unexpected indices; the detail
    reads "<count> <what>, e.g. <examples>; <note>", the examples being GE's unexpected
    values unless given (and left out when they are all null).
    """
    error = _raised(result)
    if error is not None:
        return _failure(table, column, f"Great Expectations could not check it: {error}")
    if result.success:
        return None
    found = result.result
    if examples is None:
        examples = _examples(found.get("partial_unexpected_list") or [])
    detail = f"{_count(result)} {what}"
    if any(v is not None for v in examples):
        detail += f", e.g. {examples}"
    if note:
        detail += f"; {note}"
    return _failure(table, column, detail, df, found.get("partial_unexpected_index_list") or [])


def _describe(failure: dict[str, Any]) -> str:
    where = "database" if failure["table"] is None else f"table {failure['table']!r}"
    if failure["column"] is not None:
        where += f", column {failure['column']!r}"
    rows = ""
    if failure["rows"]:
        rows = " (rows " + ", ".join(str(r["row"]) for r in failure["rows"]) + ")"
    return f"{where}: {failure['detail']}{rows}"


def _result(
    check: str,
    severity: str,
    failures: list[dict[str, Any]],
    metadata: dict[str, Any],
    ok_message: str,
) -> CheckResult:
    """A CheckResult whose message spells out the first failures."""
    if not failures:
        return CheckResult(check, True, severity, ok_message, [], metadata)
    parts = [_describe(f) for f in failures[:MESSAGE_FAILURES]]
    more = len(failures) - MESSAGE_FAILURES
    message = f"{check}: {len(failures)} failure(s): " + "; ".join(parts)
    if more > 0:
        message += f"; and {more} more"
    return CheckResult(check, False, severity, message, failures, metadata)


def check_primary_keys(db: Database) -> CheckResult:
    """Primary keys are non-null, unique and, as relbench requires, the row positions
    0..n-1 in row order: foreign keys hold row positions, so any other key silently breaks
    every join and every graph edge built from it."""
    gx, row_indices, _ = _ge()
    failures: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for name, table in db.table_dict.items():
        pkey = table.pkey_col
        if pkey is None:
            continue
        df = _positional(table.df)
        if pkey not in df.columns:
            failures.append(_failure(name, pkey, "declared primary key column is missing"))
            continue
        n = len(df)
        not_null, unique, in_range, ordered = _validate(
            df[[pkey]],
            [
                gx.expectations.ExpectColumnValuesToNotBeNull(column=pkey),
                gx.expectations.ExpectColumnValuesToBeUnique(column=pkey),
                row_indices(column=pkey, n_rows=n),
                gx.expectations.ExpectColumnValuesToBeIncreasing(column=pkey, strictly=True),
            ],
        )
        metadata[name] = {
            "column": pkey,
            "n_rows": n,
            "n_null": _count(not_null),
            "n_duplicate_rows": _count(unique),
            "n_not_row_position": _count(in_range),
            "n_out_of_order": _count(ordered),
        }
        found = [
            _failure_from(not_null, name, pkey, df, "null primary key value(s)"),
            _failure_from(unique, name, pkey, df, "rows hold duplicated values"),
        ]
        if not any(found):
            contract = f"relbench needs primary key = row position 0..{n - 1} in row order"
            found.append(
                _failure_from(
                    in_range, name, pkey, df, f"value(s) are not integers in 0..{n - 1}", contract
                )
                or _failure_from(
                    ordered, name, pkey, df, "value(s) are not greater than the previous row's",
                    contract,
                )
            )
        failures += [f for f in found if f is not None]
    return _result("primary_keys", ERROR, failures, metadata, "primary keys are 0..n-1")


def check_foreign_keys(db: Database, max_dangling_fraction: float = 0.0) -> CheckResult:
    """Every non-null foreign key value is a parent primary key (a parent row position).

    The dangling share (dangling / non-null values) of each foreign key is reported in
    metadata, with nulls (a missing link, allowed) counted apart; the check fails when a
    share exceeds `max_dangling_fraction` (a share equal to the bound passes).
    """
    if not 0.0 <= max_dangling_fraction <= 1.0:
        raise ValueError(f"max_dangling_fraction must be in [0, 1], got {max_dangling_fraction}")
    row_indices = _ge().row_indices
    mostly = max(0.0, 1.0 - max_dangling_fraction - 1e-12)
    failures: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    dangling_within_bound = 0
    for name, table in db.table_dict.items():
        df = _positional(table.df)
        checked: list[tuple[str, str, int]] = []
        for col, parent in table.fkey_col_to_pkey_table.items():
            if col not in df.columns:
                problem = "declared foreign key column is missing"
            elif parent not in db.table_dict:
                problem = f"parent table {parent!r} is not in the database"
            elif db.table_dict[parent].pkey_col is None:
                problem = f"parent table {parent!r} has no primary key"
            else:
                checked.append((col, parent, len(db.table_dict[parent].df)))
                continue
            failures.append(_failure(name, col, problem))
        if not checked:
            continue
        results = _validate(
            df[[col for col, _, _ in checked]],
            [row_indices(column=col, n_rows=n, mostly=mostly) for col, _, n in checked],
        )
        for (col, parent, n_parent), result in zip(checked, results):
            n_null = int(result.result.get("missing_count") or 0)
            n_dangling = _count(result)
            non_null = len(df) - n_null
            share = n_dangling / non_null if non_null else 0.0
            metadata.setdefault(name, {})[col] = {
                "parent": parent,
                "n_rows": len(df),
                "n_null": n_null,
                "null_fraction": n_null / len(df) if len(df) else 0.0,
                "n_dangling": n_dangling,
                "dangling_fraction": share,
            }

            failure = _failure_from(
                result,
                name,
                col,
                df,
                f"value(s) ({share:.2%} of non-null) match no row of {parent!r} "
                f"(keys 0..{n_parent - 1}), above the bound {max_dangling_fraction:.2%}",
            )
            if failure is not None:
                failures.append(failure)
            elif n_dangling:
                dangling_within_bound += 1
    ok = "every foreign key resolves"
    if dangling_within_bound:
        ok = (
            f"{dangling_within_bound} foreign key(s) have dangling values within the bound "
            f"{max_dangling_fraction:.2%} (see metadata)"
        )
    return _result("foreign_keys", ERROR, failures, metadata, ok)


def _naive(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def check_time_columns(
    db: Database,
    min_ts: pd.Timestamp = pd.Timestamp("1800-01-01"),
    max_ts: pd.Timestamp | None = None,
) -> CheckResult:
    """Declared time columns hold datetimes (string columns must parse, row by row) within
    [min_ts, max_ts] (max_ts defaults to now + 1 day): time filtering and temporal splits
    depend on them.  Timezone-aware times are compared in UTC; nulls are counted, allowed."""
    gx = _ge().gx
    low = _naive(pd.Timestamp(min_ts))
    if max_ts is None:
        high = pd.Timestamp.now() + pd.Timedelta(days=1)
    else:
        high = _naive(pd.Timestamp(max_ts))
    failures: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for name, table in db.table_dict.items():
        col = table.time_col
        if col is None:
            continue
        df = _positional(table.df)
        if col not in df.columns:
            failures.append(_failure(name, col, "declared time column is missing"))
            continue
        ser = df[col]
        stats: dict[str, Any] = {"column": col, "dtype": str(ser.dtype)}
        stats["n_null"] = int(ser.isna().sum())
        metadata[name] = stats
        if pd.api.types.is_datetime64_any_dtype(ser.dtype):
            times = ser.dt.tz_convert(None) if ser.dt.tz is not None else ser
        elif pd.api.types.is_object_dtype(ser.dtype) or pd.api.types.is_string_dtype(ser.dtype):
            text = ser.where(ser.isna(), ser.astype(str))
            (parseable,) = _validate(
                pd.DataFrame({col: text}),
                [gx.expectations.ExpectColumnValuesToBeDateutilParseable(column=col)],
            )
            stats["n_unparsable"] = _count(parseable)
            failure = _failure_from(parseable, name, col, df, "value(s) do not parse as datetimes")
            if failure is not None:
                failures.append(failure)
            times = parse_times(ser)
        else:
            failures.append(_failure(name, col, f"time column has dtype {ser.dtype}, not datetimes"))
            continue
        (in_range,) = _validate(
            pd.DataFrame({col: times}),
            [
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=col, min_value=low, max_value=high
                )
            ],
        )
        stats["n_out_of_range"] = _count(in_range)
        stats.update(min=_plain(times.min()), max=_plain(times.max()))
        window = f"time(s) outside [{low.isoformat()}, {high.isoformat()}]"
        failure = _failure_from(in_range, name, col, df, window)
        if failure is not None:
            failures.append(failure)
    return _result(
        "time_columns", ERROR, failures, metadata, "time columns parse and lie in range"
    )


def check_not_empty(db: Database) -> CheckResult:
    """The database has tables and none of them is empty: an empty table has no nodes, so
    its relations and the tasks on it are meaningless."""
    gx = _ge().gx
    failures: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    if not db.table_dict:
        failures.append(_failure(None, None, "database has no tables"))
    for name, table in db.table_dict.items():
        (count,) = _validate(
            _positional(table.df).iloc[:, :0],
            [gx.expectations.ExpectTableRowCountToBeBetween(min_value=1)],
        )
        metadata[name] = {"n_rows": len(table.df)}
        error = _raised(count)
        if error is not None or not count.success:
            failures.append(_failure(name, None, error or "table has no rows"))
    return _result("not_empty", ERROR, failures, metadata, "no table is empty")


def _family(value: Any) -> str:
    """Family of a Python value's type; numbers of any width are one family."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, pd.Timestamp):
        return "Timestamp"
    for kind in (bytes, list, dict):
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def check_column_types(db: Database) -> CheckResult:
    """No object column mixes Python types (e.g. ints among strings): tokenizers and
    parquet writers need one type per column.  The dominant type of a seeded sample of up
    to 10k values is expected of every value (GE ``ExpectColumnValuesToBeInTypeList``);
    columns whose dominant type GE cannot name (e.g. Decimal) are listed as unchecked."""
    gx = _ge().gx
    failures: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for name, table in db.table_dict.items():
        df = _positional(table.df)
        checked: list[tuple[str, str]] = []
        for col in df.columns:
            if not pd.api.types.is_object_dtype(df[col].dtype):
                continue
            values = df[col].dropna()
            if len(values) > _TYPE_SAMPLE:
                values = values.sample(_TYPE_SAMPLE, random_state=0)
            if len(values) == 0:
                continue
            family = str(values.map(_family).value_counts().index[0])
            stats = metadata.setdefault(name, {})
            stats[col] = {"dominant_type": family, "checked": family in _TYPE_LISTS}
            if family in _TYPE_LISTS:
                checked.append((col, family))
        if not checked:
            continue
        results = _validate(
            df[[col for col, _ in checked]],
            [
                gx.expectations.ExpectColumnValuesToBeInTypeList(
                    column=col, type_list=_TYPE_LISTS[family]
                )
                for col, family in checked
            ],
        )
        for (col, family), result in zip(checked, results):
            metadata[name][col]["n_other_type"] = _count(result)
            found = result.result.get("partial_unexpected_list") or []
            typed = [f"{_plain(v)!r} ({type(v).__name__})" for v in found[:EXAMPLE_ROWS]]
            what = f"value(s) are not {family} like the rest of the column"
            failure = _failure_from(result, name, col, df, what, examples=typed)
            if failure is not None:
                failures.append(failure)
    return _result("column_types", WARN, failures, metadata, "no column mixes Python types")


def check_labels(
    label_tables: dict[str, pd.DataFrame],
    entity_table_rows: int,
    entity_col: str,
    time_col: str,
    target_col: str,
    task_name: str,
) -> CheckResult:
    """Every label row names an existing entity (a row position 0..entity_table_rows-1),
    has a target and a timestamp: a label without them cannot be trained or evaluated on.
    Failures name the label table as ``"<task_name>/<split>"``."""
    gx, row_indices, _ = _ge()
    failures: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for split, frame in label_tables.items():
        table = f"{task_name}/{split}"
        df = _positional(frame)
        missing = [c for c in (entity_col, time_col, target_col) if c not in df.columns]
        for col in missing:
            failures.append(_failure(table, col, "label column is missing"))
        if missing:
            continue
        entity_null, entity_valid, target_null, time_null = _validate(
            df[list(dict.fromkeys([entity_col, target_col, time_col]))],
            [
                gx.expectations.ExpectColumnValuesToNotBeNull(column=entity_col),
                row_indices(column=entity_col, n_rows=entity_table_rows),
                gx.expectations.ExpectColumnValuesToNotBeNull(column=target_col),
                gx.expectations.ExpectColumnValuesToNotBeNull(column=time_col),
            ],
        )
        metadata[split] = {
            "n_rows": len(df),
            "n_null_entity": _count(entity_null),
            "n_missing_entity": _count(entity_valid),
            "n_null_target": _count(target_null),
            "n_null_time": _count(time_null),
        }
        found = [
            _failure_from(entity_null, table, entity_col, df, "null entity id(s)"),
            _failure_from(
                entity_valid,
                table,
                entity_col,
                df,
                f"entity id(s) outside 0..{entity_table_rows - 1} (no such entity row)",
            ),
            _failure_from(target_null, table, target_col, df, "null target(s)"),
            _failure_from(time_null, table, time_col, df, "null timestamp(s)"),
        ]
        failures += [f for f in found if f is not None]
    return _result(
        "labels", ERROR, failures, metadata, f"labels of task {task_name!r} are consistent"
    )


def dangling_key_warnings(results: Sequence[CheckResult]) -> list[str]:
    """One line per foreign key whose dangling values the ``foreign_keys`` check let through.

    Every later stage reads such a value as a missing link (``graph.fkey_index``: no parent),
    so the user is told once, with table, column, count and share.
    """
    lines = []
    for result in results:
        if result.check != "foreign_keys":
            continue
        failed = {(f["table"], f["column"]) for f in result.failures}
        for table, cols in result.metadata.items():
            for col, stats in cols.items():
                if stats["n_dangling"] and (table, col) not in failed:
                    lines.append(
                        f"table {table!r}, column {col!r}: {stats['n_dangling']} of "
                        f"{stats['n_rows'] - stats['n_null']} values ({stats['dangling_fraction']:.2%}) match "
                        f"no row of {stats['parent']!r}; within the bound, they become missing links downstream"
                    )
    return lines


def validate_database(db: Database, max_dangling_fraction: float = 0.0) -> list[CheckResult]:
    """All database checks, in the order a reader would fix them."""
    return [
        check_not_empty(db),
        check_primary_keys(db),
        check_foreign_keys(db, max_dangling_fraction=max_dangling_fraction),
        check_time_columns(db),
        check_column_types(db),
    ]
