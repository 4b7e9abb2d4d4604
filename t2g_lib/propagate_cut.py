"""The synthetic graph's propagation cut to the rows one KRR step reads.

A KRR step reads the propagated embeddings of a few synthetic rows: the support of the
task's solve and of each drawn table's pseudo-label solve. A hop's output row needs its own
previous state and every in-neighbour's, so going back from the rows read, hop by hop,
gives the rows each layer must compute; nothing else is computed, and every mean and count
is taken over all of a row's in-edges, so the rows read get the whole graph's values
(``tests/test_propagate_cut.py``). On TPC-H SF1 at 0.01 (314k synthetic line items) the
whole-graph propagation and its backward were most of a step's two seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.data import HeteroData

from t2g_lib.layer_trim import EdgesByDst, EdgeType
from t2g_lib.propagate import check_aggr, hop


class PropagationCut:
    """A graph's edges grouped by destination once (its structure is fixed while KRR learns
    its features), from which ``embed`` plans and runs each step's cut."""

    def __init__(self, data: HeteroData) -> None:
        self.sizes = {nt: int(data[nt].num_nodes) for nt in data.node_types}
        self.edges = {et: (ei[0].cpu().numpy(), ei[1].cpu().numpy()) for et, ei in data.edge_index_dict.items()}
        self.by_dst = EdgesByDst(self.edges, self.sizes)

    def rows_per_hop(self, wanted: dict[str, np.ndarray], hops: int) -> tuple[list[dict[str, np.ndarray]], list[dict]]:
        """``rows[k][nt]``: the sorted rows whose ``h^k`` is computed (``rows[hops]`` the rows
        wanted); ``edges[k][et]``: hop ``k+1``'s edges as (source positions in ``rows[k]``,
        destination positions in ``rows[k+1]``)."""
        rows: list[dict[str, np.ndarray]] = [{} for _ in range(hops + 1)]
        rows[hops] = {nt: self._sorted_rows(nt, [np.asarray(r, dtype=np.int64)]) for nt, r in wanted.items()}
        edges: list[dict[EdgeType, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(hops)]
        for k in range(hops - 1, -1, -1):
            need = {nt: [r] for nt, r in rows[k + 1].items()}  # each output row's own state
            picked = {}
            for et, (src, _) in self.edges.items():
                out = rows[k + 1].get(et[2])
                if out is None or not len(out):
                    continue
                pos = self.by_dst.into(et, out)
                if len(pos):
                    picked[et] = pos
                    need.setdefault(et[0], []).append(src[pos])
            rows[k] = {nt: self._sorted_rows(nt, parts) for nt, parts in need.items()}
            at_out = {nt: self._positions(nt, r) for nt, r in rows[k + 1].items()}
            at_in = {nt: self._positions(nt, r) for nt, r in rows[k].items()}
            edges[k] = {et: (at_in[et[0]][self.edges[et][0][pos]], at_out[et[2]][self.edges[et][1][pos]])
                        for et, pos in picked.items()}
        return rows, edges

    def _sorted_rows(self, nt: str, parts: list[np.ndarray]) -> np.ndarray:
        """The distinct rows of ``parts``, ascending (a flag per row: no sort of the parts)."""
        flag = np.zeros(self.sizes[nt], dtype=bool)
        for p in parts:
            flag[p] = True
        return np.flatnonzero(flag)

    def _positions(self, nt: str, rows: np.ndarray) -> np.ndarray:
        """Each row's position in ``rows`` (-1 for rows not in it)."""
        at = np.full(self.sizes[nt], -1, dtype=np.int64)
        at[rows] = np.arange(len(rows))
        return at

    def embed(
        self, wanted: dict[str, np.ndarray | None], hops: int, inputs: Callable[[str, torch.Tensor], torch.Tensor],
        aggr: str = "mean", device: torch.device | str = "cpu",
    ) -> "CutEmbeddings":
        """``concat(h^0..h^hops)`` (``propagate``) of the ``wanted`` rows of each node type
        (None: every row), with ``inputs(nt, rows)`` giving ``h^0`` of those rows."""
        check_aggr(aggr)
        wanted = {nt: np.arange(self.sizes[nt]) if r is None else r for nt, r in wanted.items()}
        rows, edges = self.rows_per_hop(wanted, hops)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)  # noqa: E731
        h = {nt: inputs(nt, as_t(r)) for nt, r in rows[0].items()}
        layers = [h]
        for k in range(hops):
            out = rows[k + 1]
            own = {nt: as_t(np.searchsorted(rows[k][nt], r)) for nt, r in out.items()}
            ei = {et: torch.stack([as_t(s), as_t(d)]) for et, (s, d) in edges[k].items()}
            h = hop(h, ei, {nt: len(r) for nt, r in out.items()}, own, aggr)
            layers.append(h)
        z = {nt: torch.cat([layer[nt].index_select(0, as_t(np.searchsorted(rows[k][nt], r)))
                            for k, layer in enumerate(layers)], dim=1) for nt, r in rows[hops].items()}
        return CutEmbeddings(rows[hops], z)


class CutEmbeddings:
    """The embeddings of the rows a cut was planned for, looked up by row."""

    def __init__(self, rows: dict[str, np.ndarray], z: dict[str, torch.Tensor]) -> None:
        self.rows, self.z = rows, z

    def take(self, nt: str, rows: np.ndarray | None = None) -> torch.Tensor:
        """The embeddings of ``rows`` of ``nt`` (None: every row the cut computed), in that order."""
        if rows is None:
            return self.z[nt]
        rows = np.asarray(rows, dtype=np.int64)
        pos = np.searchsorted(self.rows[nt], rows)
        if len(rows) and (pos.max() >= len(self.rows[nt]) or not np.array_equal(self.rows[nt][pos], rows)):
            raise KeyError(f"rows of {nt!r} the cut was not planned for")
        return self.z[nt].index_select(0, torch.as_tensor(pos, device=self.z[nt].device))
