"""Scratch tensors live in unlinked files under the temporary directory, not in anonymous
memory, and their files go with them."""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from t2g_lib.scratch import scratch_tensor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def mapping_of(t: torch.Tensor) -> str | None:
    """The file behind the mapping that holds ``t``'s first byte ("" for anonymous memory)."""
    ptr = t.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= ptr < hi:
            return fields[5] if len(fields) > 5 else ""
    return None


def test_scratch_tensor_is_an_unlinked_file_freed_with_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t = scratch_tensor((50_000, 16))
    t[:] = 2.0
    where = mapping_of(t)
    assert where is not None and where.startswith(str(tmp_path)) and where.endswith("(deleted)")
    assert float(t.sum()) == 2.0 * 50_000 * 16
    assert list(tmp_path.iterdir()) == []  # unlinked: nothing to clean up if the process dies
    del t
    gc.collect()
    assert str(tmp_path) not in Path("/proc/self/maps").read_text()


def test_empty_scratch_tensor() -> None:
    assert scratch_tensor((0, 8)).shape == (0, 8)


def test_an_ordinary_tensor_is_anonymous_memory() -> None:
    """The check above can fail: a tensor from ``torch.empty`` is not file-backed."""
    t = torch.empty((50_000, 16))
    assert not (mapping_of(t) or "").endswith("(deleted)")


def test_chunked_gnn_pass_keeps_its_layer_outputs_in_scratch_files(tmp_path, monkeypatch) -> None:
    from t2g_lib.encoder import ClusterGNN, mean_adjacency

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    torch.manual_seed(0)
    gnn = ClusterGNN((["t0", "t1"], [("t0", "to", "t1"), ("t1", "from", "t0")]), 8, 16).eval()
    src, dst = torch.arange(4000), torch.arange(4000) % 100
    adj = [mean_adjacency(torch.stack([src, dst]), 4000, 100, False),
           mean_adjacency(torch.stack([dst, src]), 100, 4000, False)]
    hs = gnn.infer([torch.randn(4000, 8), torch.randn(100, 8)], adj, chunk=512)
    assert all(mapping_of(h).startswith(str(tmp_path)) for h in hs)


def test_large_database_embeddings_are_written_into_scratch_files(tmp_path, monkeypatch) -> None:
    """Above ``full_graph_rows`` pretraining writes each table's embeddings into a scratch
    file a chunk at a time; below it they are ordinary arrays (same bytes as before)."""
    import numpy as np

    from t2g_lib.pretrain import pretrain_clusters
    from t2g_lib.tokens import tokenize_database
    from test_pretrain import TREES, planted_db

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    db, types, _ = planted_db()
    tokens = tokenize_database(db, types, tmp_path / "cache")
    result = pretrain_clusters(db, tokens, TREES, log=lambda _: None)
    for t, emb in result.embeddings.items():
        assert emb.shape == (len(db.table_dict[t].df), TREES.embedding_dim)
        assert mapping_of(torch.from_numpy(np.asarray(emb))).startswith(str(tmp_path)), t
