"""Tokenizing a large table: in chunks of rows, into scratch files (``scratch.py``).

``column_tokens`` on TPC-H SF1 held every finished table's tokens (2.7 GiB for the order
lines alone) beside the table being built, and the order lines' prepared frame and
torch_frame's temporaries for all 6M rows at once. Here a table of more than
``TOKEN_CHUNK_ROWS`` rows is built a chunk at a time straight into scratch files, and a
smaller table's tokens above ``SCRATCH_TABLE_BYTES`` move there once built: the stage holds
one chunk's working memory. The values are the whole-table path's (``tests/test_tokens.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from t2g_lib.text_hash import HASHING
from t2g_lib.tokens import ColumnToken, col_to_stype, fit_col_stats, materialize, prepare_column, prepare_frame

if TYPE_CHECKING:
    from torch_frame import TensorFrame

    from t2g_lib.text_embed import CachedTextEmbedder


TOKEN_CHUNK_ROWS = 1_000_000
"""A table of more rows is tokenized this many rows at a time (``tokenize_in_chunks``): its
prepared frame and torch_frame's temporaries (2-3 GiB for TPC-H SF1's 6M order lines) exist
for one chunk, not for the whole table."""


def tokenize_in_chunks(df: pd.DataFrame, columns: list[ColumnToken],
                       embedder: "CachedTextEmbedder | None") -> tuple["TensorFrame", dict, int]:
    """``materialize`` of a large table a chunk of rows at a time, into scratch files:
    (frame, col_stats, distinct texts for the model), the whole-table path's values.

    The column statistics are fitted on every row first, a column at a time, as the
    whole-table path fits them; each chunk is then encoded with them (``TableTokens.encode``'s
    path). A text column's statistic (its vectors' width) comes from the first chunk. Text
    vectors are per distinct string, so hashed text is the same bytes; a model's vectors may
    differ in the last float bits where the model batches a string beside other strings."""
    import torch
    from torch_frame import TensorFrame
    from torch_frame.data import MultiEmbeddingTensor

    from t2g_lib.scratch import scratch_tensor

    value_stype = {c.source: c.stype for c in columns if c.role == "value"}
    stype_of = col_to_stype(columns)
    stats: dict[str, dict] = {}
    texts = []
    for c in columns:
        if c.stype != "text":
            values = pd.DataFrame({c.name: prepare_column(df, c, value_stype)})
            stats.update(fit_col_stats(values, {c.name: stype_of[c.name]}))
        elif c.encoder != HASHING:  # hashed text needs no statistic and no count
            texts.append(pd.unique(prepare_column(df, c, value_stype)))
    n_distinct = int(pd.unique(np.concatenate(texts)).size) if texts else 0
    text = [c for c in columns if c.stype == "text"]
    if text:  # the text columns of the first chunk alone, for their vectors' width
        stats.update(materialize(text, prepare_frame(df.iloc[:TOKEN_CHUNK_ROWS], text), embedder)[1])
    n, feat, col_stats = len(df), {}, {}
    for start in range(0, n, TOKEN_CHUNK_ROWS):
        chunk, col_stats = materialize(columns, prepare_frame(df.iloc[start : start + TOKEN_CHUNK_ROWS], columns),
                                       embedder, stats)
        for st, x in chunk.feat_dict.items():
            if isinstance(x, torch.Tensor):
                out = feat.setdefault(st, scratch_tensor((n, *x.shape[1:]), x.dtype))
                out[start : start + len(x)] = x
            elif isinstance(x, MultiEmbeddingTensor):
                out = feat.setdefault(st, MultiEmbeddingTensor(n, x.num_cols, scratch_tensor(
                    (n, x.values.shape[1]), x.values.dtype), x.offset.clone()))
                out.values[start : start + x.num_rows] = x.values
            else:
                raise TypeError(f"no chunked tokens for {type(x).__name__} ({st})")
    return TensorFrame(feat, chunk.col_names_dict), col_stats, n_distinct


SCRATCH_TABLE_BYTES = 256 * 2**20
"""A table's tokens above this size move into a scratch file as soon as they are built, so
the stage holds one table's working memory, not every table's tokens (TPC-H SF1's order lines
alone take 2.7 GiB)."""


def frame_bytes(frame: "TensorFrame") -> int:
    """Bytes of a frame's feature tensors (a multi-tensor's values and offsets)."""
    import torch

    feats = frame.feat_dict.values()
    parts = [p for x in feats for p in ([x] if isinstance(x, torch.Tensor) else [x.values, x.offset])]
    return sum(p.numel() * p.element_size() for p in parts)


def in_scratch(frame: "TensorFrame") -> "TensorFrame":
    """The frame with its feature tensors copied into scratch files (``scratch.py``): page
    cache the kernel can write out, not the process's own memory. Values are unchanged."""
    import torch
    from torch_frame import TensorFrame

    from t2g_lib.scratch import scratch_copy

    feat = {st: scratch_copy(x) if isinstance(x, torch.Tensor) else x._apply(scratch_copy)
            for st, x in frame.feat_dict.items()}
    return TensorFrame(feat, frame.col_names_dict, frame.y)
