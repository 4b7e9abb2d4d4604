"""Stage 4 (``cluster_pretraining``): DeepCluster-style self-supervision over the REG.

Alternate (a) k-means per table on the (PCA-whitened) GNN outputs of all rows with (b)
training row encoder + GNN + per-table linear heads to predict those cluster ids with
class-balanced cross-entropy. Guards keep pseudo-labels from collapsing: empty clusters are
re-seeded at the farthest row of the largest cluster, a cluster over ``max_cluster_share``
is split by a 2-means on its rows, and the final assignment is capacity-limited so no
cluster ever holds more than that share.

``embeddings`` are the *frozen row encoder's* output, followed by the principal components
of the row's tokens (``token_pca.py``): a function of the row's own columns
only (no neighbour aggregation), so they carry no value from other rows or their times.
Pseudo-labels are different: they cluster GNN outputs over the whole REG, all times
included, and the encoder's weights are fitted on all rows (transductive pretraining).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from t2g_lib.memory import release_freed_memory
from t2g_lib.pseudo_labels import cluster_table

if TYPE_CHECKING:
    from relbench.base import Database

    from t2g_lib.tokens import TokenizedDatabase


@dataclass
class PretrainConfig:
    """Hyper-parameters. ``clusters`` overrides k_t per table (default: see ``k_for``).

    An epoch is one optimizer step. k-means re-runs on every row every ``kmeans_every``
    epochs (fitted on at most ``kmeans_sample`` rows per table, then all rows assigned
    with the balance guards). In a step the GNN runs over the whole REG, but only
    ``rows_per_step`` random rows per table go through the row encoder with gradients;
    the other rows reuse their embeddings from the round's k-means pass (historical
    embeddings), which keeps a Lahman-size step to seconds without changing the graph.
    A database of more than ``full_graph_rows`` rows trains instead on ``tree_steps`` steps
    per epoch over sampled trees of ``tree_seeds`` rows per table (``pretrain_trees.py``);
    its rounds' k-means label a pool of ``round_rows`` rows per table, drawn once, from their
    outputs over the same trees, and the steps draw their seeds from the pools. Only the
    final k-means labels every row, running the GNN layer by layer on ``infer_rows`` rows
    at a time.
    """

    dim: int = 32
    token_dims: int = 32
    hidden: int = 64
    epochs: int = 12
    kmeans_every: int = 3
    lr: float = 1e-3
    clusters: dict[str, int] | None = None
    max_cluster_share: float = 0.5
    kmeans_sample: int = 20000
    kmeans_n_init: int = 4
    whiten_dims: int | None = None
    rows_per_step: int = 8192
    full_graph_rows: int = 1_000_000  # above it, steps train on sampled trees (pretrain_trees.py)
    tree_seeds: int = 1024  # per table and step, on sampled trees
    tree_neighbors: list[int] = field(default_factory=lambda: [4, 4])  # children per relation per hop
    tree_steps: int = 4  # optimizer steps per epoch on sampled trees
    infer_rows: int = 262144  # above full_graph_rows, the final k-means pass runs the GNN this many rows at a time
    round_rows: int = 50_000  # above full_graph_rows, the rounds' k-means label this many rows per table
    seed: int = 0

    @property
    def embedding_dim(self) -> int:
        return self.dim + self.token_dims

    def k_for(self, table: str, n_rows: int) -> int:
        """k_t = clip(round(sqrt(n_t / 20)), 2, 32) unless given; never more than n_t."""
        if self.clusters is not None and table in self.clusters:
            k = int(self.clusters[table])
        else:
            k = int(np.clip(round(math.sqrt(n_rows / 20)), 2, 32))
        return max(1, min(k, n_rows))

    def dims_for(self, k: int) -> int:
        """PCA-whitening dimensions before k-means: k clusters need about k directions
        (at least 8); more only adds equally-weighted noise directions."""
        return self.whiten_dims if self.whiten_dims is not None else min(self.hidden, max(8, k))


@dataclass
class PretrainResult:
    """Per table (by name): ``embeddings`` (n_t, embedding_dim) float32, ``pseudo_labels`` (n_t,)
    int64, ``centroids`` (k_t, embedding_dim) float32 in the embedding space. ``history`` holds the
    loss per epoch and the NMI between consecutive assignments per round."""

    tables: list[str]
    embeddings: dict[str, np.ndarray]
    pseudo_labels: dict[str, np.ndarray]
    centroids: dict[str, np.ndarray]
    history: dict[str, Any]
    encoder_state: dict[str, Any]
    config: PretrainConfig = field(default_factory=PretrainConfig)

    def save(self, path: Path) -> Path:
        """Arrays as ``.npy`` by table position; table names only inside ``meta.json``."""
        import torch

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(self.tables):
            np.save(path / f"embeddings_{i}.npy", self.embeddings[t])
            np.save(path / f"pseudo_labels_{i}.npy", self.pseudo_labels[t])
            np.save(path / f"centroids_{i}.npy", self.centroids[t])
        torch.save(self.encoder_state, path / "encoder.pt")
        meta = {"tables": self.tables, "history": self.history, "config": asdict(self.config)}
        (path / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: Path) -> "PretrainResult":
        import torch

        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        tables = list(meta["tables"])

        def arrays(stem: str, mmap_mode: str | None = None) -> dict[str, np.ndarray]:
            return {t: np.load(path / f"{stem}_{i}.npy", mmap_mode=mmap_mode) for i, t in enumerate(tables)}

        return cls(
            tables,
            # Memory-mapped copy-on-write, like the tokens: every row's embedding (2.2 GiB on
            # TPC-H SF1) is read by later stages a sample at a time, never held by them.
            arrays("embeddings", "c"),
            arrays("pseudo_labels"),
            arrays("centroids"),
            meta["history"],
            torch.load(path / "encoder.pt", weights_only=True),
            PretrainConfig(**meta["config"]),
        )


def _nmi(tables: list[str], a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
    """Agreement of two consecutive assignments per table (1.0 = same partition)."""
    from sklearn.metrics import normalized_mutual_info_score

    return {t: float(normalized_mutual_info_score(x, y)) for t, x, y in zip(tables, a, b)}


def _class_weights(labels, k: int):
    """Inverse-frequency weights: every cluster counts equally in the loss."""
    import torch

    counts = torch.bincount(labels, minlength=k).clamp(min=1).float()
    return counts.sum() / (k * counts)


def pretrain_clusters(
    db: "Database",
    tokens: "TokenizedDatabase",
    config: PretrainConfig | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    num_threads: int | None = 1,
) -> PretrainResult:
    """Train the row encoder by clustering and return frozen per-row embeddings + clusters.

    ``num_threads`` sets torch's CPU threads for this call only (None: leave as is). One
    by default: on a busy 2-core host multi-threaded kernels spin against other processes,
    which made a Lahman round ~3.5x slower (115 s vs 32 s); results do not depend on it.
    """
    import torch

    before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _pretrain(db, tokens, config or PretrainConfig(), device, log)
    finally:
        torch.set_num_threads(before)


class _ClusterTrainer:
    """DeepCluster rounds over one database: k-means on the GNN's outputs gives each row a
    pseudo-label, then encoder + GNN + per-table heads learn to predict it."""

    def __init__(self, db: "Database", tokens: "TokenizedDatabase", config: PretrainConfig, device: str) -> None:
        import torch

        from t2g_lib.encoder import ClusterGNN, RowEncoder
        from t2g_lib.graph import build_reg
        from t2g_lib.pretrain_trees import TreeBatches

        torch.manual_seed(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.config = config
        self.dev = torch.device(device)
        graph, gs = build_reg(db)
        if gs.tables != tokens.tables:
            raise ValueError("tokens and database list different tables")
        self.tables = gs.tables
        self.frames = [tt.frame.to(self.dev) for tt in tokens.table_tokens]
        self.ks = [config.k_for(t, tt.n_rows) for t, tt in zip(self.tables, tokens.table_tokens)]
        self.encoder = RowEncoder(tokens, config.dim).to(self.dev)
        self.gnn = ClusterGNN(gs.metadata(), config.dim, config.hidden).to(self.dev)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(config.hidden, k) for k in self.ks).to(self.dev)
        self.opt = torch.optim.Adam([*self.encoder.parameters(), *self.gnn.parameters()], lr=config.lr)
        big = sum(tt.n_rows for tt in tokens.table_tokens) > config.full_graph_rows
        self.adj = self.gnn.adjacency(graph, self.dev, transposes=not big)  # big: read by infer only
        self.trees: TreeBatches | None = None  # set: the database trains on sampled trees
        if big:  # the rounds label a pool of rows per table, drawn once (``pretrain_trees``)
            rng = np.random.default_rng([config.seed, 12])
            pool = [np.sort(rng.choice(tt.n_rows, config.round_rows, replace=False))
                    if tt.n_rows > config.round_rows else np.arange(tt.n_rows) for tt in tokens.table_tokens]
            self.trees = TreeBatches(db, config.tree_neighbors, config.tree_seeds, config.seed, pool)

    @property
    def pool(self) -> list[np.ndarray] | None:
        """On sampled trees, the rows per table that the rounds label; None on the full graph."""
        return None if self.trees is None else self.trees.pool

    def assign(self, prev: list[np.ndarray] | None, final: bool = False) -> tuple[list[np.ndarray], list | None]:
        """k-means of every table on the current GNN outputs; heads restart from it. Also the
        row encoder's outputs, which full-graph steps reuse (None on sampled trees).

        A large database (trained on sampled trees) labels only its pools in a round, from
        their outputs over sampled trees, and ``prev`` labels the pools. Its ``final``
        assignment labels every row: it encodes rows and runs the GNN a chunk of rows at a
        time, never holding every row's encoder outputs, keeps its GNN outputs float32,
        clusters them a chunk at a time (warm-started from the pools' labels) and frees each
        table's once it is clustered."""
        import torch

        chunk = None if self.trees is None or not final else self.config.infer_rows
        embs = None
        with torch.no_grad():
            self.encoder.eval(), self.gnn.eval()
            if self.trees is None:
                embs = [self.encoder.embed(i, tf) for i, tf in enumerate(self.frames)]
                hs = self.gnn(embs, self.adj)
            elif final:
                hs = self.gnn.infer([self.encoder.rows(i, tf) for i, tf in enumerate(self.frames)], self.adj, chunk)
            else:
                hs = [self.pool_outputs(i) for i in range(len(self.tables))]
            out = []
            for i, (k, head) in enumerate(zip(self.ks, self.heads)):
                h = hs[i].cpu().numpy()
                hs[i] = None  # the table's outputs live only while it is clustered
                init = None if prev is None else prev[i]
                init_rows = self.pool[i] if final and self.trees is not None else None
                y, weight, bias = cluster_table(
                    h.astype(np.float64) if chunk is None else h, k, self.config, self.config.seed, init, chunk,
                    init_rows,
                )
                del h
                head.weight.copy_(torch.as_tensor(weight)), head.bias.copy_(torch.as_tensor(bias))
                out.append(y)
        return out, embs

    def pool_outputs(self, index: int):
        """Table ``index``'s GNN outputs for its pool rows over their trees, ``tree_seeds``
        rows at a time (no gradients)."""
        import torch

        rows, step = self.pool[index], max(self.config.tree_seeds, 1)
        if len(rows) == 0:
            return torch.zeros((0, self.config.hidden), device=self.dev)
        return torch.cat([self.trees.outputs(self, index, rows[s : s + step]) for s in range(0, len(rows), step)])

    def encode_step(self, embs: list) -> list:
        """Row embeddings for a step: a random subset per table re-encoded with gradients,
        the rest taken from the round's pass."""
        import torch

        xs = []
        for i, (tf, emb) in enumerate(zip(self.frames, embs)):
            if tf.num_rows <= self.config.rows_per_step:
                xs.append(self.encoder(i, tf))
                continue
            perm = torch.randperm(tf.num_rows, generator=self.gen)
            rows = perm[: self.config.rows_per_step].sort().values.to(self.dev)
            xs.append(emb.index_put((rows,), self.encoder(i, tf[rows])))
        return xs

    def train_round(self, labels_np: list[np.ndarray], embs: list, steps: int) -> list[float]:
        """``steps`` optimizer steps towards this round's pseudo-labels (on sampled trees, one
        per pool row); their losses."""
        import torch
        import torch.nn.functional as F

        from t2g_lib.pretrain_trees import tree_loss

        labels = [torch.as_tensor(y, device=self.dev) for y in labels_np]
        weights = [_class_weights(y, k) for y, k in zip(labels, self.ks)]
        head_opt = torch.optim.Adam(self.heads.parameters(), lr=self.config.lr)  # heads were re-set
        trained = [k > 1 for k in self.ks]
        self.encoder.train(), self.gnn.train()
        losses = []
        for _ in range(steps * (1 if self.trees is None else self.config.tree_steps)):
            if not any(trained):
                break
            self.opt.zero_grad(), head_opt.zero_grad()
            if self.trees is not None:
                loss = tree_loss(self, self.trees, labels, weights, trained)
            else:
                hs = self.gnn(self.encode_step(embs), self.adj)
                loss = torch.stack(
                    [
                        F.cross_entropy(head(h), y, weight=w)
                        for head, h, y, w, ok in zip(self.heads, hs, labels, weights, trained)
                        if ok
                    ]
                ).mean()
            loss.backward()
            self.opt.step(), head_opt.step()
            losses.append(loss.item())
        return losses


def _pretrain(
    db: "Database",
    tokens: "TokenizedDatabase",
    config: PretrainConfig,
    device: str,
    log: Callable[[str], None],
) -> PretrainResult:
    import torch

    from t2g_lib.scratch import scratch_tensor
    from t2g_lib.token_pca import table_token_pca

    trainer = _ClusterTrainer(db, tokens, config, device)
    tables, ks, dev = trainer.tables, trainer.ks, trainer.dev
    history: dict[str, Any] = {"loss": [], "nmi": [], "seconds": []}
    prev: list[np.ndarray] | None = None
    n_rounds = math.ceil(config.epochs / config.kmeans_every)
    for rnd in range(n_rounds):
        t0 = time.perf_counter()
        labels_np, embs = trainer.assign(prev)
        if prev is not None:
            history["nmi"].append(_nmi(tables, prev, labels_np))
        prev = labels_np
        steps = min(config.kmeans_every, config.epochs - rnd * config.kmeans_every)
        history["loss"] += trainer.train_round(labels_np, embs, steps)
        del embs
        release_freed_memory(collect=False)  # the round's activations, which the allocator would keep
        history["seconds"].append(time.perf_counter() - t0)
        last_loss = history["loss"][-1] if history["loss"] else float("nan")
        nmi = np.mean(list(history["nmi"][-1].values())) if history["nmi"] else float("nan")
        log(
            f"round {rnd + 1}/{n_rounds}: loss {last_loss:.4f}, "
            f"NMI vs previous round {nmi:.3f}, {history['seconds'][-1]:.1f}s"
        )

    # Final assignment; the frozen encoder's output (its pass, or on sampled trees a pass
    # after clustering, a table at a time) and the token PCA are the embeddings.
    t0 = time.perf_counter()
    final, embs = trainer.assign(prev, final=True)
    if prev is not None:  # on sampled trees the rounds labelled the pools
        history["nmi"].append(_nmi(tables, prev, [y[p] for y, p in zip(final, trainer.pool)]
                                   if trainer.trees is not None else final))
    embeddings, centroids, pseudo = {}, {}, {}
    for i, (t, k, tt, y_np) in enumerate(zip(tables, ks, tokens.table_tokens, final)):
        # A large database's embeddings are written into a scratch file a chunk at a time
        # (the stored value is copied from it), never held whole in memory.
        shape = (tt.n_rows, config.embedding_dim)
        emb = scratch_tensor(shape, device=dev) if trainer.trees is not None else torch.empty(shape, device=dev)
        if embs is None:
            trainer.encoder.embed(i, trainer.frames[i], out=emb[:, : config.dim])
        else:
            emb[:, : config.dim] = embs.pop(0)
        if emb.device.type == "cpu":
            table_token_pca(tt.frame, config.token_dims, config.seed, out=emb.numpy()[:, config.dim :])
        else:
            emb[:, config.dim :] = torch.as_tensor(table_token_pca(tt.frame, config.token_dims, config.seed), device=dev)
        y = torch.as_tensor(y_np, device=dev)
        sums = torch.zeros(k, emb.shape[1], device=dev).index_add_(0, y, emb)
        cnt = torch.bincount(y, minlength=k).clamp(min=1).unsqueeze(1)
        embeddings[t] = emb.cpu().numpy().astype(np.float32, copy=False)  # no second copy of every row
        centroids[t] = (sums / cnt).cpu().numpy().astype(np.float32)
        pseudo[t] = y_np.astype(np.int64)
        del emb, y, sums
        release_freed_memory(collect=False)  # each table's temporaries, before the next table's
    history["seconds"].append(time.perf_counter() - t0)
    log(f"final assignment: {history['seconds'][-1]:.1f}s")
    state = {k: v.detach().cpu() for k, v in trainer.encoder.state_dict().items()}
    return PretrainResult(tables, embeddings, pseudo, centroids, history, state, config)


def clusters_markdown(result: PretrainResult) -> str:
    """Per table: rows, clusters and the largest cluster's share of the rows."""
    return "| table | rows | clusters | largest cluster share |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {t} | {len(result.pseudo_labels[t])} | {len(result.centroids[t])} "
        f"| {np.bincount(result.pseudo_labels[t]).max() / max(len(result.pseudo_labels[t]), 1):.3f} |"
        for t in result.pseudo_labels
    )
