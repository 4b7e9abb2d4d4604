"""Stage 3 (``column_tokens``): every feature column of every table as torch_frame tensors.

Per table, one torch_frame ``Dataset`` is materialized into a ``TensorFrame`` plus
``col_stats``; the row encoder (``encoder.py``) turns those into learnable column tokens.
Preprocessing done here, in pandas, so nothing is lost silently:

- numerical: robust standardization (median / IQR, clipped); a column with missing values
  gets a separate 0/1 ``<col>__isna`` column, so a missing value never reads as a real zero;
- categorical: missing becomes the explicit category ``__missing__``; categories unseen at
  fit time map to torch_frame's NA index (-1), which the embedding encoder handles;
- text: frozen all-MiniLM-L6-v2 vectors, once per distinct string (``text_embed.py``), for a
  column with at most ``text_model_budget`` distinct strings; hashed words randomly projected
  (``text_hash.py``) for a bigger one;
- timestamp (the table's time column included): torch_frame calendar/cyclic features, with
  an ``__isna`` column where values are missing;
- key columns (primary and foreign keys) are excluded: the graph carries them.

Column names are user data, so torch_frame only ever sees internal names ``c0, c1, ...``;
``ColumnToken`` keeps the mapping back to the source column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from t2g_lib.schema import md_cell, n_distinct
from t2g_lib.text_hash import HASHING, TEXT_MODEL_BUDGET, hashed_text_embedder, text_encoder

if TYPE_CHECKING:
    from relbench.base import Database, Table
    from torch_frame import TensorFrame

    from t2g_lib.text_embed import CachedTextEmbedder

MISSING_CATEGORY = "__missing__"
CLIP = 5.0  # standardized numericals live in [-CLIP, CLIP]
_IQR_TO_STD = 1.349  # IQR of a standard normal: keeps robust scale comparable to std
SEMANTIC_TYPES = ("key", "numerical", "categorical", "text", "timestamp")


@dataclass
class ColumnToken:
    """One torch_frame column: its internal name and where its values come from.

    ``role`` is ``value`` (the column itself), ``isna`` (its missing-value indicator) or
    ``const`` (the placeholder of a table without feature columns). ``center``/``scale``
    are the fitted robust standardization of a numerical value column; ``encoder`` says how
    a text column is embedded (``text_hash.text_encoder``).
    """

    name: str
    source: str | None
    role: str
    stype: str
    center: float = 0.0
    scale: float = 1.0
    encoder: str = ""

    @property
    def label(self) -> str:
        """Human-readable name, for summaries only."""
        if self.role == "isna":
            return f"{self.source}__isna"
        return self.source if self.source is not None else "__const__"


@dataclass
class TableTokens:
    """A table's materialized ``TensorFrame``, its fitted ``col_stats`` and column map."""

    frame: "TensorFrame"
    col_stats: dict[str, dict[Any, Any]]
    columns: list[ColumnToken]
    n_text_distinct: int = 0
    n_embedded_now: int = 0

    @property
    def n_rows(self) -> int:
        return int(self.frame.num_rows)

    def encode(self, df: pd.DataFrame, embedder: "CachedTextEmbedder | None" = None) -> "TensorFrame":
        """Encode new rows of this table with the statistics fitted on the full table.

        Unseen categories become NA (-1); numerical scaling and category indices are those
        of the fit, so the result is directly comparable with ``frame``.
        """
        return materialize(self.columns, prepare_frame(df, self.columns), embedder, self.col_stats)[0]


@dataclass
class TokenizedDatabase:
    """Per-table tokens, in sorted table order (the order ``graph.GraphSchema`` uses)."""

    tables: list[str]
    table_tokens: list[TableTokens]
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, table: str) -> TableTokens:
        return self.table_tokens[self.tables.index(table)]

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for table, tt in zip(self.tables, self.table_tokens):
            by_stype: dict[str, list[str]] = {}
            for c in tt.columns:
                by_stype.setdefault(c.stype, []).append(c.label)
            out[table] = {
                "n_rows": tt.n_rows,
                "columns": by_stype,
                "n_text_distinct": tt.n_text_distinct,
                "n_embedded_now": tt.n_embedded_now,
                "hashed": [c.label for c in tt.columns if c.encoder == HASHING],
            }
        return out

    def save(self, path: Path) -> Path:
        """One torch_frame file per table, named by position (table names are user data)."""
        import torch_frame

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, tt in enumerate(self.table_tokens):
            torch_frame.save(tt.frame, tt.col_stats, str(path / f"table_{i}.pt"))
        meta = {
            "tables": self.tables,
            "meta": self.meta,
            "table_meta": [
                {
                    "columns": [asdict(c) for c in tt.columns],
                    "n_text_distinct": tt.n_text_distinct,
                    "n_embedded_now": tt.n_embedded_now,
                }
                for tt in self.table_tokens
            ],
        }
        (path / "tokens.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "TokenizedDatabase":
        import torch
        from torch_frame import TensorFrame
        from torch_frame.data.stats import StatType
        from torch_frame.utils.io import deserialize_feat_dict

        # col_stats hold StatType keys: allow them so the load stays weights_only.
        torch.serialization.add_safe_globals([StatType])
        path = Path(path)
        meta = json.loads((path / "tokens.json").read_text())
        tokens = []
        for i, tm in enumerate(meta["table_meta"]):
            # torch_frame.load's steps, memory-mapped: a table's tokens are paged in from the
            # file as rows are read (a few GiB at TPC-H SF1), and the kernel can drop them
            # again; copy-on-write, so nothing ever writes to the stored file.
            tf_dict, col_stats = torch.load(path / f"table_{i}.pt", weights_only=True, mmap=True)
            tf_dict["feat_dict"] = deserialize_feat_dict(tf_dict.pop("feat_serialized_dict"))
            frame = TensorFrame(**tf_dict).to(device)
            tokens.append(
                TableTokens(
                    frame,
                    col_stats,
                    [ColumnToken(**c) for c in tm["columns"]],
                    tm["n_text_distinct"],
                    tm["n_embedded_now"],
                )
            )
        return cls(list(meta["tables"]), tokens, dict(meta.get("meta", {})))


def col_to_stype(columns: list[ColumnToken]) -> dict[str, Any]:
    import torch_frame

    kinds = {
        "numerical": torch_frame.numerical,
        "categorical": torch_frame.categorical,
        "text": torch_frame.text_embedded,
        "timestamp": torch_frame.timestamp,
    }
    return {c.name: kinds[c.stype] for c in columns}


def _numeric(ser: pd.Series) -> pd.Series:
    """Float view of a column; non-numeric entries and infinities count as missing."""
    if pd.api.types.is_bool_dtype(ser):
        ser = ser.astype("float64")
    x = pd.to_numeric(ser, errors="coerce").astype("float64")
    return x.mask(~np.isfinite(x))


def _timestamps(ser: pd.Series) -> pd.Series:
    """Naive UTC datetimes; unparseable entries are NaT."""
    return pd.to_datetime(ser, errors="coerce", utc=True).dt.tz_convert(None)


def _fit_columns(table: "Table", types: dict[str, str], text_model_budget: int = TEXT_MODEL_BUDGET) -> list[ColumnToken]:
    """Decide the torch_frame columns of one table, fit numerical scaling and pick each
    text column's encoder by its distinct strings."""
    keys = set(table.fkey_col_to_pkey_table)
    if table.pkey_col is not None:
        keys.add(table.pkey_col)
    cols: list[ColumnToken] = []

    def add(source: str | None, role: str, stype: str, center: float = 0.0, scale: float = 1.0,
            encoder: str = "") -> None:
        cols.append(ColumnToken(f"c{len(cols)}", source, role, stype, center, scale, encoder))

    for col in table.df.columns:
        if col in keys:
            continue
        kind = "timestamp" if col == table.time_col else types.get(col)
        if kind is None:
            raise KeyError(f"column {col!r} has no semantic type")
        if kind not in SEMANTIC_TYPES:
            raise ValueError(f"column {col!r}: unknown semantic type {kind!r}")
        if kind == "key":
            continue
        ser = table.df[col]
        if kind == "numerical":
            x = _numeric(ser)
            if x.isna().all():
                continue  # nothing to learn from; an all-missing indicator is constant too
            q25, center, q75 = np.nanquantile(x.to_numpy(), [0.25, 0.5, 0.75])
            scale = (q75 - q25) / _IQR_TO_STD
            if not scale > 0:  # heavy point mass (e.g. mostly zeros): fall back to std
                scale = float(np.nanstd(x.to_numpy()))
            add(col, "value", "numerical", float(center), float(scale) if scale > 0 else 1.0)
            if x.isna().any():
                add(col, "isna", "numerical")
        elif kind == "timestamp":
            ts = _timestamps(ser)
            if ts.isna().all():
                continue
            add(col, "value", "timestamp")
            if ts.isna().any():
                add(col, "isna", "numerical")
        elif ser.isna().all():
            continue  # an all-missing categorical / text column is a constant
        elif kind == "text":
            add(col, "value", kind, encoder=text_encoder(n_distinct(ser), text_model_budget))
        else:
            add(col, "value", kind)
    if not cols:
        add(None, "const", "numerical")
    return cols


def prepare_frame(df: pd.DataFrame, columns: list[ColumnToken]) -> pd.DataFrame:
    """The data frame torch_frame materializes: internal names, preprocessed values."""
    value_stype = {c.source: c.stype for c in columns if c.role == "value"}
    return pd.DataFrame({c.name: prepare_column(df, c, value_stype) for c in columns}, index=pd.RangeIndex(len(df)))


def prepare_column(df: pd.DataFrame, c: ColumnToken, value_stype: dict[str | None, str]) -> np.ndarray:
    """Column ``c`` of ``prepare_frame``'s frame."""
    if c.role == "const":
        return np.ones(len(df), dtype=np.float32)
    ser = df[c.source]
    if c.role == "isna":
        parse = _timestamps if value_stype[c.source] == "timestamp" else _numeric
        return parse(ser).isna().to_numpy(dtype=np.float32)
    if c.stype == "numerical":
        x = ((_numeric(ser) - c.center) / c.scale).clip(-CLIP, CLIP)
        # The indicator column carries missingness; the value sits at the median.
        return x.fillna(0.0).to_numpy(dtype=np.float32)
    if c.stype == "categorical":
        return ser.astype(object).where(ser.notna(), MISSING_CATEGORY).astype(str).to_numpy()
    if c.stype == "text":
        return ser.astype(object).where(ser.notna(), "").astype(str).to_numpy()
    return _timestamps(ser).to_numpy()


def materialize(
    columns: list[ColumnToken],
    frame_df: pd.DataFrame,
    embedder: "CachedTextEmbedder | None",
    col_stats: dict | None = None,
):
    """torch_frame ``Dataset.materialize`` on the prepared frame -> (TensorFrame, col_stats)."""
    from torch_frame.config.text_embedder import TextEmbedderConfig
    from torch_frame.data import Dataset

    stypes = col_to_stype(columns)
    if embedder is None and any(c.stype == "text" and c.encoder != HASHING for c in columns):
        raise ValueError("text columns need a text embedder")
    # batch_size=None: the embedder sees the whole column at once and embeds each distinct
    # string once; it batches the model (or the hashing) itself.
    cfg = {c.name: TextEmbedderConfig(text_embedder=embedder if c.encoder != HASHING else hashed_text_embedder(),
                                      batch_size=None) for c in columns if c.stype == "text"}
    ds = Dataset(frame_df, stypes, col_to_text_embedder_cfg=cfg or None)
    ds.materialize(col_stats=col_stats if col_stats is not None else fit_col_stats(frame_df, stypes))
    return ds.tensor_frame, {col: {k: _plain(v) for k, v in st.items()} for col, st in ds.col_stats.items()}


def fit_col_stats(frame_df: pd.DataFrame, stypes: dict[str, Any]) -> dict[str, dict]:
    """torch_frame's column statistics, with numerical ones vectorized.

    torch_frame computes numerical stats through ``np.hstack`` over the column's Python
    scalars, which takes about a minute on a 100k-row table with 20 numerical columns.
    """
    import torch_frame
    from torch_frame.data.stats import StatType, compute_col_stats

    stats: dict[str, dict] = {}
    for col, stype in stypes.items():
        if stype == torch_frame.numerical:
            x = frame_df[col].to_numpy(dtype=np.float64)  # prepared: finite, no NaN
            stats[col] = {
                StatType.MEAN: float(x.mean()),
                StatType.STD: float(x.std()),
                StatType.QUANTILES: np.quantile(x, [0, 0.25, 0.5, 0.75, 1]).tolist(),
            }
        else:
            stats[col] = compute_col_stats(frame_df[col], stype)
    return stats


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so saved col_stats load with ``weights_only``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def tokenize_database(
    db: "Database",
    column_types: dict[str, dict[str, str]],
    cache_dir: Path,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    text_model_budget: int = TEXT_MODEL_BUDGET,
) -> TokenizedDatabase:
    """Tokenize every table of ``db``.

    ``column_types`` maps table -> column -> one of ``SEMANTIC_TYPES``; primary/foreign keys
    are excluded whatever their type, and each table's time column is kept as a timestamp.
    Text vectors are cached under ``cache_dir`` (shared across runs and tasks); a text column
    with more than ``text_model_budget`` distinct strings is hashed instead (``text_hash.py``).
    """
    from t2g_lib import tokens_at_scale
    from t2g_lib.text_embed import MODEL_ID, CachedTextEmbedder

    embedder = CachedTextEmbedder(cache_dir, device=device)
    tables = sorted(db.table_dict)
    tokens: list[TableTokens] = []
    for table in tables:
        t = db.table_dict[table]
        columns = _fit_columns(t, column_types.get(table, {}), text_model_budget)
        before = embedder.n_embedded_strings
        if len(t.df) > tokens_at_scale.TOKEN_CHUNK_ROWS:
            frame, col_stats, n_distinct = tokens_at_scale.tokenize_in_chunks(t.df, columns, embedder)
        else:
            frame_df = prepare_frame(t.df, columns)
            text_cols = [c.name for c in columns if c.stype == "text" and c.encoder != HASHING]
            n_distinct = int(pd.unique(frame_df[text_cols].to_numpy().ravel()).size) if text_cols else 0
            frame, col_stats = materialize(columns, frame_df, embedder)
            del frame_df
            if tokens_at_scale.frame_bytes(frame) > tokens_at_scale.SCRATCH_TABLE_BYTES:
                frame = tokens_at_scale.in_scratch(frame)
        tokens.append(TableTokens(frame, col_stats, columns, n_distinct, embedder.n_embedded_strings - before))
        if progress is not None:
            progress(
                f"{table}: {tokens[-1].n_rows} rows, {len(columns)} columns, "
                f"{n_distinct} distinct texts ({tokens[-1].n_embedded_now} embedded now)"
                + "".join(f", {c.source!r} hashed" for c in columns if c.encoder == HASHING)
            )
    meta = {"text_model": MODEL_ID, "column_types": column_types}
    return TokenizedDatabase(tables, tokens, meta)


def tokens_markdown(tokens: TokenizedDatabase) -> str:
    """Per table: rows, columns per semantic type, distinct texts for the sentence model, texts
    embedded this run and the text columns hashed instead."""
    stypes = ("numerical", "categorical", "text", "timestamp")
    md = "| table | rows | " + " | ".join(stypes) + " | distinct texts | embedded now | hashed |\n|---|" + "---:|" * 7 + "---|\n"
    return md + "\n".join(
        f"| {md_cell(t)} | {s['n_rows']} | " + " | ".join(str(len(s["columns"].get(k, []))) for k in stypes)
        + f" | {s['n_text_distinct']} | {s['n_embedded_now']} | {', '.join(md_cell(c) for c in s['hashed'])} |"
        for t, s in tokens.summary().items()
    )
