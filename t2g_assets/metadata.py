"""Metadata a person reads in the UI: DataFrames as Dagster tables (typed, sortable columns)."""

from __future__ import annotations

import math

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema


def _column_type(dtype) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "string"


def _cell(value, kind: str):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "float":
        return round(float(value), 4)  # what a person compares; the stored value keeps every digit
    return {"int": int, "bool": bool}.get(kind, str)(value)


def frame_table(df):
    """A DataFrame as table metadata: one typed column per column, NaN as empty cells."""
    kinds = {c: _column_type(df[c].dtype) for c in df.columns}
    schema = TableSchema(columns=[TableColumn(str(c), kinds[c]) for c in df.columns])
    records = [
        TableRecord({str(c): _cell(v, kinds[c]) for c, v in zip(df.columns, row)})
        for row in df.itertuples(index=False, name=None)
    ]
    return MetadataValue.table(records=records, schema=schema)
