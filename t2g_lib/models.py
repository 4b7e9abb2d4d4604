"""The heterogeneous GNNs that evaluation trains on the full database and on distilled graphs.

Every model reads the same inputs: ``x_dict`` (per node type, features of dimension
``in_dim`` from the frozen row encoder, or learned synthetic features) and
``edge_index_dict`` over the shared positional metadata of ``graph.GraphSchema``, plus, for
a model built ``temporal``, ``age_dict``: each node's age in days at its seed's time
(``temporal.age_days``; NaN for untimed rows), encoded as in RelBench's RDL model. So one
model class runs unchanged on a sampled real subgraph, on the whole REG and on a distilled
graph. SAGE aggregates by ``aggr`` (``"sum"`` by default: a parent with 300 children is not
the same as one with 1). Per-node-type layers live in ``ModuleList``s indexed by the node type's position:
no module is ever keyed by a name, user-given or not, of our own making.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from relbench.base import TaskType
from torch import Tensor, nn

from t2g_lib.layer_trim import LayerCut
from t2g_lib.metrics import BINARY, MULTICLASS, REGRESSION, task_kind

Metadata = tuple[list[str], list[tuple[str, str, str]]]

MODEL_NAMES = ("sage", "hgt", "han")


@dataclass(frozen=True)
class ModelSpec:
    """How evaluation builds and feeds every GNN, on the full database and on any graph:
    width, depth, SAGE's neighbour aggregation, the neighbours sampled per hop of a real
    subgraph, and whether real rows' ages at the seed time are read (``temporal``; a graph
    without times trains a model without the encoder)."""

    hidden: int = 64
    num_layers: int = 2
    aggr: str = "sum"
    temporal: bool = True
    num_neighbors: tuple[int, ...] = (16, 8)


class RelativeTime(nn.Module):
    """Sinusoidal features of a row's age (days before its seed's time), projected per node
    type; rows without a time get zeros."""

    def __init__(self, num_node_types: int, hidden: int) -> None:
        super().__init__()
        half = max(hidden // 2, 1)
        self.register_buffer("freq", 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float32) / half)))
        self.lin = nn.ModuleList(nn.Linear(2 * half, hidden) for _ in range(num_node_types))

    def forward(self, i: int, age_days: Tensor) -> Tensor:
        timed = torch.isfinite(age_days)
        z = torch.where(timed, age_days, torch.zeros_like(age_days))[:, None] * self.freq
        return self.lin[i](torch.cat([z.sin(), z.cos()], dim=-1)) * timed[:, None]


class HeteroGNN(nn.Module):
    """Input projection per node type, ``num_layers`` message-passing layers, linear head.

    ``task`` plus ``target_loc`` / ``target_scale`` (the standardisation of a regression
    target) are set by training, so a trained model carries everything needed to turn its
    raw output into a prediction, whichever graph it was trained on.
    """

    def __init__(
        self,
        name: str,
        metadata: Metadata,
        in_dim: int,
        hidden: int = 64,
        out_dim: int = 1,
        num_layers: int = 2,
        heads: int = 2,
        aggr: str = "sum",
        temporal: bool = False,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import HANConv, HeteroConv, LayerNorm, SAGEConv

        from t2g_lib.hgt import FastHGTConv  # torch_geometric's import is slow: load on first use

        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
        node_types, edge_types = list(metadata[0]), [tuple(e) for e in metadata[1]]
        self.name = name
        self.node_types = node_types
        self.edge_types = edge_types
        self.lin_in = nn.ModuleList(nn.Linear(in_dim, hidden) for _ in node_types)
        self.time_encoder = RelativeTime(len(node_types), hidden) if temporal else None
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(num_layers):
            if name == "sage":
                conv = HeteroConv(
                    {et: SAGEConv((hidden, hidden), hidden, aggr=aggr) for et in edge_types},
                    aggr="sum",
                )
            elif name == "hgt":
                conv = FastHGTConv(hidden, hidden, (node_types, edge_types), heads=heads)
            else:
                conv = HANConv(hidden, hidden, (node_types, edge_types), heads=heads)
            self.convs.append(conv)
            self.norms.append(nn.ModuleList(LayerNorm(hidden, mode="node") for _ in node_types))
        self.head = nn.Linear(hidden, out_dim)
        self.task: TaskType | None = None
        self.register_buffer("target_loc", torch.zeros(()))
        self.register_buffer("target_scale", torch.ones(()))
        self.projected: set[int] = set()  # node-type positions read through a projection

    def set_input_projection(self, projections: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Read node type ``nt``'s features as ``x @ P + shift`` (``projections[nt]``): a
        model trained on a graph stored in a subspace (``feature_codec``) reads real rows
        through the same subspace."""
        for i, nt in enumerate(self.node_types):
            if nt in projections:
                p, shift = projections[nt]
                self.register_buffer(f"in_proj_{i}", torch.as_tensor(p, dtype=torch.float32))
                self.register_buffer(f"in_shift_{i}", torch.as_tensor(shift, dtype=torch.float32))
                self.projected.add(i)

    def _input(self, i: int, x: Tensor) -> Tensor:
        if i in self.projected:
            x = x @ getattr(self, f"in_proj_{i}") + getattr(self, f"in_shift_{i}")
        return self.lin_in[i](x)

    def set_task(self, task, loc: float = 0.0, scale: float = 1.0) -> None:
        """Remember the task type and how regression targets were standardised."""
        self.task = task_kind(task)
        self.target_loc.fill_(float(loc))
        self.target_scale.fill_(float(scale) if scale > 0 else 1.0)

    def output_to_prediction(self, raw: Tensor) -> Tensor:
        """Raw head output -> P(class 1) (binary), class probabilities (multiclass) or the
        target in its original units (regression)."""
        if self.task == BINARY:
            return torch.sigmoid(raw.view(-1))
        if self.task == MULTICLASS:
            return torch.softmax(raw, dim=-1)
        if self.task == REGRESSION:
            return raw.view(-1) * self.target_scale + self.target_loc
        raise RuntimeError("model has no task: train it with t2g_lib.train first")

    @property
    def temporal(self) -> bool:
        """Whether the model reads each node's age (``age_dict``)."""
        return self.time_encoder is not None

    def embed(
        self, x_dict: dict[str, Tensor], edge_index_dict: dict, age_dict: dict[str, Tensor] | None = None,
        cuts: list[LayerCut] | None = None,
    ) -> dict[str, Tensor]:
        """Hidden states of every node after the message-passing layers; with ``cuts``
        (``layer_trim``), each layer reads only its cut's rows and edges, and only the rows
        within reach of the seeds come out right."""
        h = {
            nt: self._input(i, x_dict[nt])
            for i, nt in enumerate(self.node_types)
            if nt in x_dict
        }
        if self.time_encoder is not None and age_dict is not None:
            for i, nt in enumerate(self.node_types):
                if nt in h and nt in age_dict:
                    h[nt] = h[nt] + self.time_encoder(i, age_dict[nt])
        edges = {et: ei for et, ei in edge_index_dict.items() if et[0] in h and et[2] in h}
        for layer, (conv, norms) in enumerate(zip(self.convs, self.norms)):
            if cuts is not None:
                cut = cuts[layer]
                h = {nt: v[: cut.size[nt]] for nt, v in h.items() if nt in cut.size}
                edges = {et: ei for et, ei in cut.edge_index.items() if et[0] in h and et[2] in h}
            out = conv(h, edges) if edges else {}
            new: dict[str, Tensor] = {}
            for i, nt in enumerate(self.node_types):
                if nt not in h:
                    continue
                o = out.get(nt)
                if self.name == "han":
                    # HAN aggregates neighbours only (no self term): keep the node's own state.
                    o = h[nt] if o is None else o + h[nt]
                elif o is None:
                    # A node type that received no message keeps its state.
                    o = h[nt]
                new[nt] = torch.relu(norms[i](o))
            h = new
        return h

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict,
        seed_type: str,
        num_seeds: int | None = None,
        age_dict: dict[str, Tensor] | None = None,
        cuts: list[LayerCut] | None = None,
    ) -> Tensor:
        """Raw outputs, shape (n_seeds, out_dim), for the first ``num_seeds`` seed-type nodes
        (all of them when None: a distilled graph's target nodes are all training seeds)."""
        h = self.embed(x_dict, edge_index_dict, age_dict, cuts)[seed_type]
        if num_seeds is not None:
            h = h[:num_seeds]
        return self.head(h)


def build_model(
    name: str,
    metadata: Metadata,
    in_dim: int,
    hidden: int = 64,
    out_dim: int = 1,
    num_layers: int = 2,
    aggr: str = "sum",
    temporal: bool = False,
) -> HeteroGNN:
    """``"sage"`` (RelBench's RDL GraphSAGE: SAGEConv(``aggr``) + LayerNorm + ReLU), ``"hgt"``
    or ``"han"`` (metapaths = the graph's edge types) over PyG heterogeneous metadata;
    ``temporal`` adds the relative-time encoder."""
    return HeteroGNN(name, metadata, in_dim, hidden, out_dim, num_layers, aggr=aggr, temporal=temporal)
