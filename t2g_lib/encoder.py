"""Row encoder (column tokens -> one vector per row) and the heterogeneous GNN over the REG.

Per-table modules live in ``torch.nn.ModuleList``s indexed by table position (the order of
``TokenizedDatabase.tables`` / ``graph.GraphSchema.tables``). Never a ``ModuleDict`` keyed by
table name: a table called ``keys`` or ``update`` collides with the dict's own methods
(relbench's ``HeteroEncoder`` has exactly this bug). The GNN sees only positional node types
(``t0``, ``t1``...) and relation-indexed edge types from ``graph.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from t2g_lib.tokens import TokenizedDatabase

EdgeType = tuple[str, str, str]


def _stype_encoders(col_names_dict) -> dict:
    """One fresh torch_frame encoder per stype present (they hold per-table lazy state)."""
    import torch_frame
    from torch_frame.nn.encoder import (
        EmbeddingEncoder,
        LinearEmbeddingEncoder,
        LinearEncoder,
        TimestampEncoder,
    )

    make = {
        torch_frame.numerical: LinearEncoder,
        torch_frame.categorical: EmbeddingEncoder,
        torch_frame.embedding: LinearEmbeddingEncoder,  # text_embedded is merged into it
        torch_frame.timestamp: TimestampEncoder,
    }
    return {stype: make[stype]() for stype in col_names_dict}


class TableEncoder(nn.Module):
    """One table: stype-wise column tokens -> mean over columns -> LayerNorm -> Linear."""

    def __init__(self, col_stats: dict, col_names_dict: dict, dim: int) -> None:
        super().__init__()
        from torch_frame.nn.encoder import StypeWiseFeatureEncoder

        self.columns = StypeWiseFeatureEncoder(
            out_channels=dim,
            col_stats=col_stats,
            col_names_dict=col_names_dict,
            stype_encoder_dict=_stype_encoders(col_names_dict),
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, tf) -> Tensor:
        x, _ = self.columns(tf)  # (rows, columns, dim)
        return self.out(self.norm(x.mean(dim=1)))


class RowEncoder(nn.Module):
    """Per-row embeddings of every table; ``encoders[i]`` encodes ``tables[i]``."""

    def __init__(self, tokens: TokenizedDatabase, dim: int) -> None:
        super().__init__()
        self.tables = list(tokens.tables)
        self.dim = dim
        self.encoders = nn.ModuleList(
            TableEncoder(tt.col_stats, tt.frame.col_names_dict, dim) for tt in tokens.table_tokens
        )

    def forward(self, frames: list) -> list[Tensor]:
        """Full-batch encoding: ``frames[i]`` is the TensorFrame of ``tables[i]``."""
        return [enc(tf) for enc, tf in zip(self.encoders, frames)]

    @torch.no_grad()
    def embed(self, index: int, tf, batch_size: int = 65536) -> Tensor:
        """Inference in row chunks, bounding memory on large tables."""
        enc = self.encoders[index]
        n = tf.num_rows
        if n == 0:
            return torch.zeros((0, self.dim), device=next(self.parameters()).device)
        return torch.cat([enc(tf[i : i + batch_size]) for i in range(0, n, batch_size)])


class HeteroGNN(nn.Module):
    """Input projection, then residual HeteroConv layers of mean-aggregating SAGEConv.

    Node types are ``t<i>``; ``in_proj[i]`` / ``norms[l][i]`` belong to node type ``t<i>``.
    A node type that receives no edges keeps its projected input (the residual path).
    """

    def __init__(
        self,
        metadata: tuple[list[str], list[EdgeType]],
        in_dim: int,
        hidden: int,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import HeteroConv, SAGEConv

        self.node_types, self.edge_types = list(metadata[0]), list(metadata[1])
        n_types = len(self.node_types)
        self.in_proj = nn.ModuleList(nn.Linear(in_dim, hidden) for _ in range(n_types))
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv(hidden, hidden, aggr="mean") for et in self.edge_types}, aggr="sum")
            for _ in range(num_layers if self.edge_types else 0)
        )
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_types)) for _ in self.convs
        )

    def forward(self, xs: list[Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> list[Tensor]:
        """``xs[i]`` are the row embeddings of node type ``t<i>``; returns the same layout."""
        h = {nt: proj(x) for nt, proj, x in zip(self.node_types, self.in_proj, xs)}
        for conv, norms in zip(self.convs, self.norms):
            msg = conv(h, edge_index_dict)
            h = {
                nt: norm(h[nt] + torch.relu(msg[nt])) if nt in msg else h[nt]
                for nt, norm in zip(self.node_types, norms)
            }
        return [h[nt] for nt in self.node_types]
