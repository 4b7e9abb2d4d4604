"""Row encoder (column tokens -> one vector per row) and the heterogeneous GNN over the REG.

Per-table modules live in ``torch.nn.ModuleList``s indexed by table position (the order of
``TokenizedDatabase.tables`` / ``graph.GraphSchema.tables``). Never a ``ModuleDict`` keyed by
table name: a table called ``keys`` or ``update`` collides with the dict's own methods
(relbench's ``HeteroEncoder`` has exactly this bug). The GNN sees only positional node types
(``t0``, ``t1``...) and relation-indexed edge types from ``graph.py``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from t2g_lib.scratch import scratch_tensor
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

    def forward(self, index: int, tf) -> Tensor:
        """Embeddings (with gradients) of the rows in ``tf``, a TensorFrame of ``tables[index]``."""
        return self.encoders[index](tf)

    @torch.no_grad()
    def embed(self, index: int, tf, batch_size: int = 65536, out: Tensor | None = None) -> Tensor:
        """Inference in row chunks, bounding memory on large tables; written into ``out``
        (rows, dim) if given (a scratch file's rows: no second copy of a large table's)."""
        n = tf.num_rows
        if out is not None:
            for i in range(0, n, batch_size):
                out[i : i + batch_size] = self(index, tf[i : i + batch_size])
            return out
        if n == 0:
            return torch.zeros((0, self.dim), device=next(self.parameters()).device)
        return torch.cat([self(index, tf[i : i + batch_size]) for i in range(0, n, batch_size)])

    def rows(self, index: int, tf) -> "EncodedRows":
        """The embeddings of ``tf``'s rows, encoded only when a slice of them is read."""
        return EncodedRows(self, index, tf)


class EncodedRows:
    """A table's row embeddings as a sliceable sequence computed on demand: a chunked GNN
    pass (``ClusterGNN.infer``) reads them a chunk at a time, so they never exist for every
    row of a large table at once."""

    def __init__(self, encoder: RowEncoder, index: int, tf) -> None:
        self.encoder, self.index, self.tf = encoder, index, tf

    def __len__(self) -> int:
        return int(self.tf.num_rows)

    def __getitem__(self, rows: slice) -> Tensor:
        return self.encoder.embed(self.index, self.tf[rows])


def mean_adjacency(edge_index: Tensor, n_src: int, n_dst: int, transpose: bool = True) -> tuple[Tensor, Tensor | None]:
    """Row-normalized adjacency of one edge type as CSR (n_dst, n_src), plus its transpose.

    ``A @ x`` is the mean over each destination's neighbours (0 where it has none). The
    transpose is kept for the backward pass, so no sparse transpose/sort happens per step;
    passes without gradients do without it (``transpose=False``: None).
    """
    src, dst = edge_index[0], edge_index[1]
    deg = torch.bincount(dst, minlength=n_dst).clamp(min=1).to(torch.float32)
    values = 1.0 / deg[dst]

    def csr(rows: Tensor, cols: Tensor, vals: Tensor, n_rows: int, n_cols: int) -> Tensor:
        if rows.numel() > 1 and bool((rows[1:] < rows[:-1]).any()):
            order = torch.argsort(rows, stable=True)
            rows, cols, vals = rows[order], cols[order], vals[order]
        crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(crow, cols, vals, (n_rows, n_cols))

    return csr(dst, src, values, n_dst, n_src), (csr(src, dst, values, n_src, n_dst) if transpose else None)


def csr_row_block(a: Tensor, start: int, stop: int) -> Tensor:
    """Rows ``start:stop`` of a sparse CSR matrix, sharing its column indices and values."""
    crow = a.crow_indices()
    lo, hi = int(crow[start]), int(crow[stop])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            crow[start : stop + 1] - lo, a.col_indices()[lo:hi], a.values()[lo:hi], (stop - start, a.shape[1])
        )


class _SparseMean(torch.autograd.Function):
    """``A @ x`` with the backward ``A.T @ grad`` from a precomputed transpose."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, a_t: Tensor) -> Tensor:
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return torch.sparse.mm(ctx.a_t, grad), None, None


class _HeteroSAGELayer(nn.Module):
    """One heterogeneous GraphSAGE (mean) layer with a residual connection.

    For node type d: ``h_d + relu(W_d h_d + b_d + sum_r V_r mean_r(h_src))`` then
    LayerNorm — what ``HeteroConv({r: SAGEConv(aggr="mean")}, aggr="sum")`` computes, with
    one root weight per node type instead of one per edge type. Because the mean is linear,
    ``V_r`` is applied on whichever side of the relation has fewer rows (parents are few,
    children many), which with sparse CSR products keeps a Lahman-size step to seconds.
    """

    def __init__(self, n_types: int, pairs: list[tuple[int, int]], hidden: int) -> None:
        super().__init__()
        self.pairs = pairs
        self.self_lin = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_types))
        self.rel_lin = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in pairs)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_types))

    def forward(self, h: list[Tensor], adjs: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
        out = [lin(x) for lin, x in zip(self.self_lin, h)]
        for (s, d), lin, (a, a_t) in zip(self.pairs, self.rel_lin, adjs):
            if a.shape[1] < a.shape[0]:
                msg = _SparseMean.apply(lin(h[s]), a, a_t)
            else:
                msg = lin(_SparseMean.apply(h[s], a, a_t))
            out[d] = out[d] + msg
        return [norm(x + torch.relu(o)) for norm, x, o in zip(self.norms, h, out)]

    @torch.no_grad()
    def infer(self, h: list[Tensor], adjs: list[tuple[Tensor, Tensor]], chunk: int) -> list[Tensor]:
        """``forward`` computed ``chunk`` destination rows at a time: besides the layer's input
        and output, memory holds one chunk's messages, never a relation's for every row."""
        out = []
        for d, (lin, norm, x) in enumerate(zip(self.self_lin, self.norms, h)):
            res = scratch_tensor(tuple(x.shape), x.dtype, x.device)
            for start in range(0, len(x), chunk):
                stop = min(start + chunk, len(x))
                o = lin(x[start:stop])
                for (s, dd), rel, (a, _) in zip(self.pairs, self.rel_lin, adjs):
                    if dd == d:
                        o += rel(torch.sparse.mm(csr_row_block(a, start, stop), h[s]))
                res[start:stop] = norm(x[start:stop] + torch.relu(o))
            out.append(res)
        return out


class ClusterGNN(nn.Module):
    """Input projection, then residual heterogeneous SAGE (mean) layers over the REG.

    Node type ``t<i>`` is index i everywhere (``in_proj[i]``, ``xs[i]``); edge types follow
    ``metadata[1]`` and their adjacencies come from ``adjacency``.
    """

    def __init__(
        self,
        metadata: tuple[list[str], list[EdgeType]],
        in_dim: int,
        hidden: int,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        self.node_types, self.edge_types = list(metadata[0]), list(metadata[1])
        pos = {nt: i for i, nt in enumerate(self.node_types)}
        pairs = [(pos[s], pos[d]) for s, _, d in self.edge_types]
        self.in_proj = nn.ModuleList(nn.Linear(in_dim, hidden) for _ in self.node_types)
        self.layers = nn.ModuleList(
            _HeteroSAGELayer(len(self.node_types), pairs, hidden) for _ in range(num_layers)
        )

    def adjacency(
        self, graph, device: torch.device | str = "cpu", transposes: bool = True
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Mean adjacencies of ``graph`` (a PyG HeteroData) per edge type, with their transposes
        unless only ``infer`` will read them (``transposes=False``)."""
        out = []
        for et in self.edge_types:
            s, _, d = et
            ei = graph[et].edge_index.to(device)
            out.append(mean_adjacency(ei, graph[s].num_nodes, graph[d].num_nodes, transposes))
        return out

    def forward(self, xs: list[Tensor], adjs: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """``xs[i]`` are the row embeddings of node type ``t<i>``; returns the same layout."""
        h = [proj(x) for proj, x in zip(self.in_proj, xs)]
        for layer in self.layers:
            h = layer(h, adjs)
        return h

    @torch.no_grad()
    def infer(self, xs: list, adjs: list[tuple[Tensor, Tensor]], chunk: int = 262144) -> list[Tensor]:
        """``forward`` without gradients, layer by layer in chunks of destination rows, for a
        database too large for a full-graph pass: at most two layers' outputs for every row,
        in scratch files (``t2g_lib.scratch``), not anonymous memory. ``xs[i]`` is any
        sliceable sequence of rows (a Tensor, or ``RowEncoder.rows`` to encode them a chunk
        at a time)."""
        h = []
        for proj, x in zip(self.in_proj, xs):
            out = scratch_tensor((len(x), proj.out_features), device=proj.weight.device)
            for i in range(0, len(x), chunk):
                out[i : i + chunk] = proj(x[i : i + chunk])
            h.append(out)
        for layer in self.layers:
            h = layer.infer(h, adjs, chunk)
        return h
