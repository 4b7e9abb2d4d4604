"""Semantic column types and the key graph of a relational database.

Stage 2 (`validated_schema`) of the pipeline: every column gets one semantic type that
decides its tokenizer downstream, and the declared primary / foreign keys form the key graph
that becomes the edge types of the relational entity graph.  Table and column names are user
data, so they are kept verbatim as dict keys and strings and are only ever escaped for
display (markdown, mermaid), never used as identifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.text_hash import text_encoder

#: At most this many non-null values are looked at to tell text from categorical strings.
SAMPLE_ROWS = 10_000
#: Integral numbers with at most this many distinct values are categorical (codes, flags).
MAX_CATEGORICAL_NUMBERS = 20
#: Strings need more distinct values than this (and the ratio below) to be free text.
MIN_TEXT_DISTINCT = 50
#: ... and at least this share of distinct values among the sampled non-null strings.
MIN_TEXT_DISTINCT_RATIO = 0.2
#: ... and this many whitespace tokens on average,
MIN_TEXT_TOKENS = 3.0
#: ... or, with at least two tokens on average, more than this many characters on average.
MIN_TEXT_LENGTH = 20.0

_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?")


class SemanticType(str, Enum):
    """How a column is tokenized: one tokenizer per semantic type."""

    KEY = "key"
    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    TEXT = "text"
    TIMESTAMP = "timestamp"


@dataclass
class ColumnSchema:
    """One column: its semantic type, pandas dtype and the counts the type was inferred from."""

    name: str
    stype: SemanticType
    dtype: str
    n_null: int
    n_distinct: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stype": self.stype.value,
            "dtype": self.dtype,
            "n_null": self.n_null,
            "n_distinct": self.n_distinct,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSchema:
        return cls(
            name=data["name"],
            stype=SemanticType(data["stype"]),
            dtype=data["dtype"],
            n_null=int(data["n_null"]),
            n_distinct=int(data["n_distinct"]),
        )


@dataclass
class TableSchema:
    """One table: its keys, time column and typed columns (in the frame's column order)."""

    name: str
    n_rows: int
    pkey: str | None
    time_col: str | None
    fkeys: dict[str, str] = field(default_factory=dict)
    columns: list[ColumnSchema] = field(default_factory=list)

    def columns_of(self, stype: SemanticType) -> list[str]:
        """Names of the columns of one semantic type, in column order."""
        return [c.name for c in self.columns if c.stype == stype]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_rows": self.n_rows,
            "pkey": self.pkey,
            "time_col": self.time_col,
            "fkeys": dict(self.fkeys),
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableSchema:
        return cls(
            name=data["name"],
            n_rows=int(data["n_rows"]),
            pkey=data["pkey"],
            time_col=data["time_col"],
            fkeys=dict(data["fkeys"]),
            columns=[ColumnSchema.from_dict(c) for c in data["columns"]],
        )


@dataclass
class DatabaseSchema:
    """All tables of a database, keyed by their (verbatim) names."""

    tables: dict[str, TableSchema] = field(default_factory=dict)

    def relations(self) -> list[tuple[str, str, str]]:
        """(child table, foreign key column, parent table) for every foreign key, sorted by
        child table then column so edge types get the same order on every run."""
        return sorted(
            (child, col, parent)
            for child, table in self.tables.items()
            for col, parent in table.fkeys.items()
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (str keys, plain values) that `from_dict` turns back into the schema."""
        return {"tables": {name: t.to_dict() for name, t in self.tables.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatabaseSchema:
        return cls(tables={name: TableSchema.from_dict(t) for name, t in data["tables"].items()})


def n_distinct(ser: pd.Series) -> int:
    """Distinct non-null values (by ``repr`` for unhashable cells): what types a column and
    what picks a text column's encoder."""
    try:
        return int(ser.nunique(dropna=True))
    except TypeError:  # unhashable cells (lists, dicts)
        return int(ser.dropna().map(repr).nunique())


def _sample(values: pd.Series) -> pd.Series:
    if len(values) <= SAMPLE_ROWS:
        return values
    return values.sample(SAMPLE_ROWS, random_state=0)


def _string_stype(strings: pd.Series, n_distinct: int) -> SemanticType:
    """Timestamp, text or categorical for a sample of non-null strings."""
    if strings.str.fullmatch(_ISO_DATETIME).all():
        return SemanticType.TIMESTAMP
    distinct_ratio = strings.nunique() / len(strings)
    tokens = strings.str.split().str.len().mean()
    length = strings.str.len().mean()
    many_distinct = n_distinct > MIN_TEXT_DISTINCT and distinct_ratio >= MIN_TEXT_DISTINCT_RATIO
    wordy = tokens >= MIN_TEXT_TOKENS or (tokens >= 2 and length > MIN_TEXT_LENGTH)
    return SemanticType.TEXT if many_distinct and wordy else SemanticType.CATEGORICAL


def _numeric_stype(values: pd.Series, n_distinct: int) -> SemanticType:
    """Categorical for few distinct integral values (codes), numerical otherwise."""
    if n_distinct <= MAX_CATEGORICAL_NUMBERS and bool((_sample(values) % 1 == 0).all()):
        return SemanticType.CATEGORICAL
    return SemanticType.NUMERICAL


def infer_column_stype(ser: pd.Series, n_distinct: int) -> SemanticType:
    """Semantic type of a non-key, non-time column (`infer_schema` documents the rules)."""
    dtype = ser.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return SemanticType.TIMESTAMP
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return SemanticType.CATEGORICAL
    if pd.api.types.is_numeric_dtype(dtype):
        return _numeric_stype(ser.dropna(), n_distinct)
    values = _sample(ser.dropna())
    if len(values) == 0:
        return SemanticType.CATEGORICAL
    kinds = values.map(type)
    if kinds.map(lambda k: issubclass(k, str)).all():
        return _string_stype(values.astype(str), n_distinct)
    if kinds.map(lambda k: issubclass(k, (bool, np.bool_))).all():
        return SemanticType.CATEGORICAL
    if kinds.map(lambda k: issubclass(k, (int, float, np.number))).all():
        return _numeric_stype(pd.to_numeric(ser.dropna()), n_distinct)
    if kinds.map(lambda k: issubclass(k, pd.Timestamp)).all():
        return SemanticType.TIMESTAMP
    return SemanticType.CATEGORICAL


def infer_schema(db: Database) -> DatabaseSchema:
    """Infer every column's semantic type and collect the declared key graph.

    Rules, first match wins (thresholds are the module constants):

    - KEY: the declared primary key and foreign key columns, and only those; an undeclared
      column that merely looks like an id (``user_id``) is typed by its values.
    - TIMESTAMP: the declared time column, datetime dtypes (tz-aware too), object columns
      of ``pd.Timestamp`` and string columns whose sampled values are all ISO-8601 dates
      (``YYYY-MM-DD[ HH:MM[:SS[.f]]][tz]``).
    - CATEGORICAL: bool and pandas categorical dtypes; integral numbers with at most
      ``MAX_CATEGORICAL_NUMBERS`` (20) distinct values (codes, flags, ratings).
    - NUMERICAL: all other numbers (ints, floats, object columns holding only numbers).
    - TEXT: strings with many distinct values (more than ``MIN_TEXT_DISTINCT`` = 50 overall
      and at least ``MIN_TEXT_DISTINCT_RATIO`` = 0.2 of the sampled values distinct) *and*
      multi-word content (mean whitespace token count >= ``MIN_TEXT_TOKENS`` = 3, or >= 2
      tokens with mean length > ``MIN_TEXT_LENGTH`` = 20 characters).
    - CATEGORICAL otherwise: short or repetitive strings, including high-cardinality
      single-token identifiers (codes, undeclared string keys, names), and mixed objects.

    The string decision looks at a seeded sample of at most ``SAMPLE_ROWS`` (10k) non-null
    values; null and distinct counts use the whole column, so a 600k-row table takes well
    under a second.  torch_frame's ``infer_df_stype`` is not used: it calls an integer
    column categorical when its rarest value occurs more than 4 times, which depends on
    table size (count columns of large tables turn categorical) and it calls high-cardinality
    identifiers text.
    """
    tables: dict[str, TableSchema] = {}
    for name, table in db.table_dict.items():
        keys = set(table.fkey_col_to_pkey_table)
        if table.pkey_col is not None:
            keys.add(table.pkey_col)
        columns = []
        for col in table.df.columns:
            ser = table.df[col]
            distinct = n_distinct(ser)
            if col in keys:
                stype = SemanticType.KEY
            elif col == table.time_col:
                stype = SemanticType.TIMESTAMP
            else:
                stype = infer_column_stype(ser, distinct)
            columns.append(
                ColumnSchema(
                    name=col,
                    stype=stype,
                    dtype=str(ser.dtype),
                    n_null=int(ser.isna().sum()),
                    n_distinct=distinct,
                )
            )
        tables[name] = TableSchema(
            name=name,
            n_rows=len(table.df),
            pkey=table.pkey_col,
            time_col=table.time_col,
            fkeys=dict(table.fkey_col_to_pkey_table),
            columns=columns,
        )
    return DatabaseSchema(tables=tables)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def md_cell(name: str) -> str:
    """A name as literal markdown table-cell text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(name).split()))


def schema_markdown(schema: DatabaseSchema) -> str:
    """One markdown table, a row per table: size, keys, time column, columns by type."""
    typed = [
        SemanticType.NUMERICAL,
        SemanticType.CATEGORICAL,
        SemanticType.TEXT,
        SemanticType.TIMESTAMP,
    ]
    header = ["table", "rows", "primary key", "time column", "foreign keys"]
    header += [t.value for t in typed]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, table in schema.tables.items():
        fkeys = ", ".join(f"{md_cell(col)} → {md_cell(parent)}" for col, parent in table.fkeys.items())
        cells = [
            md_cell(name),
            f"{table.n_rows:,}",
            md_cell(table.pkey) if table.pkey is not None else "",
            md_cell(table.time_col) if table.time_col is not None else "",
            fkeys,
        ]
        cells += [", ".join(md_cell(c) for c in table.columns_of(t)) for t in typed]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def text_plan_markdown(schema: DatabaseSchema, budget: int) -> str:
    """How each text column will be embedded: the sentence model for at most ``budget``
    distinct strings, hashing beyond (``text_hash.text_encoder``), so the cost shows before
    ``column_tokens`` runs."""
    lines = [f"Sentence model up to {budget:,} distinct strings per column; hashed words beyond.", "",
             "| table | column | distinct strings | encoder |", "|---|---|---:|---|"]
    for name, table in schema.tables.items():
        for c in table.columns:
            if c.stype == SemanticType.TEXT:
                lines.append(f"| {md_cell(name)} | {md_cell(c.name)} | {c.n_distinct:,} | {text_encoder(c.n_distinct, budget)} |")
    return "\n".join(lines) + "\n"


_MERMAID_KEY_WORDS = {"PK", "FK", "UK"}


def _identifier(name: str) -> str:
    """ASCII letters, digits and underscores only: what mermaid accepts unquoted."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(name: str) -> str:
    """Text for a double-quoted mermaid string, which has no escape for its quote."""
    return " ".join(str(name).replace('"', "'").split())


def schema_mermaid(schema: DatabaseSchema) -> str:
    """A mermaid erDiagram of the key graph.

    Entities get a sanitized, index-prefixed identifier (``t0_order_items``) and show the
    verbatim name through an alias (``t0_order_items["order items"]``); attributes get a
    sanitized name (``column_<j>`` when nothing ASCII is left) and, when it differs, the
    verbatim name as their comment.
    """
    ids = {name: f"t{i}_{_identifier(name)}" for i, name in enumerate(schema.tables)}
    lines = ["erDiagram"]
    for name, table in schema.tables.items():
        entity = f'    {ids[name]}["{_label(name)}"]'
        if not table.columns:
            lines.append(entity)
            continue
        lines.append(entity + " {")
        for j, col in enumerate(table.columns):
            attr = _identifier(col.name)
            if not re.search(r"[A-Za-z0-9]", attr):
                attr = f"column_{j}"
            elif not re.match(r"[A-Za-z_]", attr):
                attr = "c_" + attr
            if attr.upper() in _MERMAID_KEY_WORDS:
                attr += "_"
            if col.name == table.pkey:
                marker = " PK"
            elif col.name in table.fkeys:
                marker = " FK"
            else:
                marker = ""
            comment = f' "{_label(col.name)}"' if attr != col.name else ""
            lines.append(f"        {col.stype.value} {attr}{marker}{comment}")
        lines.append("    }")
    for child, col, parent in schema.relations():
        if parent in ids:
            lines.append(f'    {ids[parent]} ||--o{{ {ids[child]} : "{_label(col)}"')
    return "\n".join(lines) + "\n"
