"""Training protocols: full data through the temporal sampler, or a distilled graph only.

A model trained either way is applied to real seeds the same way (``SampledSplit`` /
``predict``): each label ``(entity, T)`` gets its own temporal subtree holding only rows
stamped <= T, so training on the full database and evaluating any model follow RelBench's
time semantics. Runs are deterministic given ``seed`` on CPU (on CUDA, scatter reductions
may reorder float sums).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from relbench.base import Database
from torch_geometric.data import HeteroData

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.graph import GraphSchema, SyntheticGraph
from t2g_lib.layer_trim import EdgesByDst, TrimmedGraph, batch_inputs, model_inputs
from t2g_lib.metrics import BINARY, MULTICLASS, REGRESSION, is_better, primary_metric, score, task_kind
from t2g_lib.metrics import loss as task_loss
from t2g_lib.models import HeteroGNN, ModelSpec, build_model
from t2g_lib.seed_views import seed_groups, unroll
from t2g_lib.task_data import TaskData
from t2g_lib.temporal import TemporalSampler, age_days, gather_rows, max_leak_seconds, to_seconds


GNN_REGRESSION_LOSS = "l1"
"""Regression GNNs are judged by MAE, so they train on it (RelBench's choice too)."""
# A distilled graph's mini-batch inputs kept for later passes, at most (on TPC-H SF0.3 the
# judge's coreset batches took 1.4 GiB; SF1's coreset of 165k examples has 323 batches of
# 512, each drawn about once in 280 steps, so a cache saves little there; Lahman's graphs
# take a few MiB and are all kept)
BATCH_CACHE_BYTES = 256 << 20
SPLIT_MEMORY_BYTES = 256 << 20
"""A sampled split's model inputs kept in memory; the rest go to scratch files (``scratch.py``).
A split is read whole at every evaluation, so its inputs are kept, not rebuilt, but the KRR
judge's 20,000 val labels on TPC-H SF1 gather the features of millions of sampled rows."""


@dataclass
class TrainResult:
    """A trained model and what its training cost and achieved.

    ``seconds`` is the time spent fitting (sampling + forward/backward), without the
    validation passes (``val_seconds``), so full and distilled training compare fairly.
    ``val_metric`` is the primary metric of the kept checkpoint on the real val split
    (NaN when training had no val split).
    """

    model: HeteroGNN
    seconds: float
    val_metric: float
    metric_name: str
    epochs: int
    losses: list[float] = field(default_factory=list)
    val_seconds: float = 0.0
    max_leak_seconds: int = 0


def label_frame(table) -> pd.DataFrame:
    """A label table's DataFrame, whether given as a relbench ``Table`` or a DataFrame."""
    return table.df if hasattr(table, "df") else table


def as_feature_tensors(features: dict) -> dict[str, torch.Tensor]:
    """Per-table features (arrays or tensors) as float32 CPU tensors for the sampler."""
    return {t: torch.as_tensor(np.asarray(v), dtype=torch.float32) for t, v in features.items()}


def make_sampler(db: Database, num_neighbors=(8, 8)) -> TemporalSampler:
    """The temporal neighbour sampler over ``db``: built once, shared by every model."""
    return TemporalSampler(db, num_neighbors=list(num_neighbors))


def sampled_inputs(model: HeteroGNN, sub: HeteroData, seed_type: str, n: int) -> TrimmedGraph:
    """A sampled subgraph as ``model`` reads it for its first ``n`` seed-type rows, the
    seeds: each layer cut to what reaches them where that is exact (``layer_trim``)."""
    return model_inputs(model.name, sub.x_dict, sub.edge_index_dict, age_days(sub), seed_type, torch.arange(n),
                        len(model.convs))


class SampledSplit:
    """The temporal subgraphs of one label table's seeds, sampled once and reused.

    Sampling is deterministic (the most recent neighbours <= T), so val and test
    subgraphs are sampled once and shared by every model, method and seed. The subgraphs
    hold node ids, not features: a batch's rows are gathered when a model's inputs are built
    (``with_features``), so a split of many seeds does not keep a second copy of every
    sampled row's features beside the inputs the models read.
    """

    def __init__(
        self,
        sampler: TemporalSampler,
        features: dict,
        table_df: pd.DataFrame,
        task: TaskData,
        batch_size: int = 512,
        with_target: bool = True,
    ) -> None:
        df = label_frame(table_df)
        self.seed_type = sampler.schema.node_type(task.entity_table)
        self.index = df[task.entity_col].to_numpy(dtype=np.int64)
        self.time = to_seconds(df[task.time_col])
        self.y = df[task.target_col].to_numpy() if with_target else None
        self.schema = sampler.schema
        self.features = as_feature_tensors(features)
        self.batches: list[tuple[int, HeteroData]] = []  # (seeds, subgraph without features)
        self._inputs: dict[tuple[str, int], list[TrimmedGraph]] = {}  # per model name and depth
        self.max_leak_seconds = 0
        for start in range(0, len(self.index), batch_size):
            sl = slice(start, start + batch_size)
            sub = sampler.sample(task.entity_table, self.index[sl], self.time[sl])
            self.max_leak_seconds = max(self.max_leak_seconds, int(max_leak_seconds(sub)))
            self.batches.append((len(self.index[sl]), sub))

    def __len__(self) -> int:
        return len(self.index)

    def samples(self) -> list[tuple[HeteroData, np.ndarray]]:
        """(subgraph, its seeds' label times in seconds) per batch, for the leakage check."""
        out, start = [], 0
        for n, sub in self.batches:
            out.append((sub, self.time[start : start + n]))
            start += n
        return out

    def with_features(self, sub: HeteroData) -> HeteroData:
        """A copy of a batch's subgraph with its rows' features (the originals stay without)."""
        out = copy.copy(sub)
        for nt in out.node_types:
            out[nt].x = gather_rows(self.features[self.schema.table_of(nt)], out[nt].n_id)
        return out

    def inputs(self, model: HeteroGNN) -> list[TrimmedGraph]:
        """Each batch as ``model`` reads it (``sampled_inputs``), built once per model kind.
        Past ``SPLIT_MEMORY_BYTES`` of them, the rest are kept in scratch files: the same
        values, read back in order at each evaluation, in memory the kernel can reclaim."""
        from t2g_lib.scratch import scratch_copy

        key = (model.name, len(model.convs))
        if key not in self._inputs:
            built, kept = [], 0
            for n, sub in self.batches:
                inputs = sampled_inputs(model, self.with_features(sub), self.seed_type, n)
                kept += inputs.nbytes()
                built.append(inputs if kept <= SPLIT_MEMORY_BYTES else inputs.apply(scratch_copy))
            self._inputs[key] = built
        return self._inputs[key]

    @torch.no_grad()
    def predict(self, model: HeteroGNN, device) -> np.ndarray:
        """Predictions (probabilities, or targets in original units) for every seed, in order."""
        model.eval()
        outs = []
        for inputs in self.inputs(model):
            raw = inputs.to(device).outputs(model, self.seed_type)
            outs.append(model.output_to_prediction(raw).cpu())
        if not outs:
            return np.zeros((0,), dtype=np.float32)
        return torch.cat(outs).numpy()

    def score(self, model: HeteroGNN, device, task_type) -> dict[str, float]:
        """All metrics of ``model`` on this split's labels."""
        return score(task_type, self.y, self.predict(model, device))


def predict(
    model: HeteroGNN,
    db: Database,
    features: dict,
    table_df,
    task: TaskData,
    device="cpu",
    num_neighbors=(8, 8),
    batch_size: int = 512,
) -> tuple[np.ndarray, int]:
    """Apply a model (trained on either graph) to the real seeds of ``table_df`` (a label
    table of ``task``); also returns the largest amount, in seconds, by which any sampled
    row postdates its seed (0 = no leak)."""
    split = SampledSplit(
        make_sampler(db, num_neighbors), features, table_df, task, batch_size=batch_size, with_target=False,
    )
    return split.predict(model.to(device), device), split.max_leak_seconds


def count_classes(*labels: np.ndarray) -> int:
    """Classes a multiclass model needs for these integer label arrays: the largest + 1."""
    return int(max(np.asarray(y, dtype=np.int64).max(initial=0) for y in labels)) + 1


@dataclass
class _Fit:
    seconds: float
    val_seconds: float
    best: float
    epochs: int
    losses: list[float]


def _fit(
    model: HeteroGNN,
    epochs: int,
    train_epoch: Callable[[], float],
    val_split: SampledSplit | None,
    kind,
    device,
    *,
    eval_every: int = 1,
    patience: int | None = None,
    report: Callable[[int, float, float, float], None] = lambda *_: None,
) -> _Fit:
    """The loop both protocols share, over rounds (full training's epochs, distilled
    training's steps): train a round, score on real val every ``eval_every`` rounds (and at
    the last), keep the best checkpoint, stop after ``patience`` scored rounds without
    improvement (never, when None). Fitting and validation are timed apart."""
    metric, _ = primary_metric(kind)
    best, best_state, bad = float("nan"), None, 0
    fit_s = val_s = 0.0
    losses: list[float] = []
    epoch = 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses.append(train_epoch())
        fit_s += time.perf_counter() - t0
        if val_split is None or not len(val_split) or not (epoch % eval_every == 0 or epoch == epochs):
            continue
        t0 = time.perf_counter()
        value = val_split.score(model, device, kind)[metric]
        val_s += time.perf_counter() - t0
        report(epoch, losses[-1], value, fit_s)
        if is_better(value, best, kind):
            best, best_state, bad = value, copy.deepcopy(model.state_dict()), 0
        elif patience is not None:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return _Fit(fit_s, val_s, best, epoch, losses)


def train_full(
    model_name: str,
    db: Database,
    features: dict,
    task: TaskData,
    epochs: int = 20,
    batch_size: int = 512,
    seed: int = 0,
    device="cpu",
    spec: ModelSpec = ModelSpec(),
    *,
    lr: float = 0.005,
    patience: int = 3,
    num_classes: int | None = None,
    sampler: TemporalSampler | None = None,
    val_split: SampledSplit | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainResult:
    """Train on the real train split with temporal mini-batches, early-stopped on val.

    The checkpoint with the best val primary metric is kept; training stops after
    ``patience`` epochs without improvement. ``sampler`` / ``val_split`` may be passed in
    to share them across models. ``log`` gets one line per epoch.
    """
    kind = task_kind(task.task_type)
    metric, _ = primary_metric(kind)
    schema = GraphSchema.from_database(db)
    sampler = sampler if sampler is not None else make_sampler(db, spec.num_neighbors)
    seed_type = schema.node_type(task.entity_table)
    feats = as_feature_tensors(features)
    dims = {int(f.shape[1]) for f in feats.values()}
    if len(dims) != 1:
        raise ValueError(f"every table's features must share one dimension (one encoder), got {sorted(dims)}")
    train_df = label_frame(task.train)
    index = train_df[task.entity_col].to_numpy(dtype=np.int64)
    times = to_seconds(train_df[task.time_col])
    y_all = train_df[task.target_col].to_numpy()
    if val_split is None:
        val_split = SampledSplit(sampler, feats, task.val, task, batch_size)
    out_dim = (num_classes or count_classes(y_all, val_split.y)) if kind == MULTICLASS else 1
    torch.manual_seed(seed)
    model = build_model(model_name, schema.metadata(), dims.pop(), spec.hidden, out_dim, spec.num_layers,
                        spec.aggr, spec.temporal)
    if kind == MULTICLASS:
        model.set_task(kind)
        y_train = torch.as_tensor(y_all.astype(np.int64))
    elif kind == BINARY:
        model.set_task(kind)
        y_train = torch.as_tensor(y_all.astype(np.float32))
    else:
        y_all = y_all.astype(np.float64)
        model.set_task(kind, float(y_all.mean()), float(y_all.std()))
        y_train = torch.as_tensor(
            ((y_all - model.target_loc.item()) / model.target_scale.item()).astype(np.float32)
        )
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    max_leak = val_split.max_leak_seconds

    def train_epoch() -> float:
        """One pass over the train labels in shuffled temporal mini-batches; mean loss."""
        nonlocal max_leak
        order = rng.permutation(len(index))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            sub = sampler.sample(task.entity_table, index[rows], times[rows], feats)
            max_leak = max(max_leak, int(max_leak_seconds(sub)))
            raw = sampled_inputs(model, sub, seed_type, len(rows)).to(device).outputs(model, seed_type)
            loss = task_loss(kind, raw, y_train[rows].to(device), GNN_REGRESSION_LOSS)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(rows)
            count += len(rows)
        return total / max(count, 1)

    def report(epoch: int, loss: float, value: float, fit_s: float) -> None:
        log(f"{model_name} full-data epoch {epoch}/{epochs}: loss {loss:.4f}, val {metric} {value:.4f}, {fit_s:.0f}s")

    fit = _fit(model, epochs, train_epoch, val_split, kind, device, patience=patience, report=report)
    return TrainResult(model, fit.seconds, fit.best, metric, fit.epochs, fit.losses, fit.val_seconds, max_leak)


def _soft_targets(groups, kind: str) -> np.ndarray:
    """Every labelled example's label as a model trained on a graph fits it: probabilities
    clipped to [0, 1], class probabilities renormalised, targets as they are."""
    y = np.concatenate([np.asarray(g.y, dtype=np.float64) for g in groups])
    if kind == MULTICLASS:
        if y.ndim != 2:
            raise ValueError(f"multiclass synthetic labels must be (n, C) probabilities, got {y.shape}")
        y = np.clip(y, 0.0, None)
        return y / np.maximum(y.sum(1, keepdims=True), 1e-12)
    return np.clip(y, 0.0, 1.0) if kind == BINARY else y


def _graph_model(model_name: str, graph: SyntheticGraph, kind: str, spec: ModelSpec, y: np.ndarray) -> HeteroGNN:
    """The untrained model for ``graph``: its width, its codec's input projection, the time
    encoder only when the graph carries row ages, and targets ``y`` standardised for regression."""
    out_dim = int(y.shape[1]) if kind == MULTICLASS else 1
    in_dim = int(np.asarray(graph.x[graph.target_table]).shape[1])
    model = build_model(model_name, graph.schema.metadata(), in_dim, spec.hidden, out_dim, spec.num_layers,
                        spec.aggr, spec.temporal and bool(graph.age))
    if graph.codec is not None:
        model.set_input_projection({
            graph.schema.node_type(t): graph.codec.projection(t) for t in graph.schema.tables
        })
    if kind == REGRESSION:
        model.set_task(kind, float(y.mean()), float(y.std()))
    else:
        model.set_task(kind)
    return model


def restore_distilled(model_name: str, graph: SyntheticGraph, task_type, spec: ModelSpec, state: dict) -> HeteroGNN:
    """The model ``train_distilled`` trains on ``graph``, with the trained weights ``state``."""
    kind = task_kind(task_type)
    model = _graph_model(model_name, graph, kind, spec, _soft_targets(seed_groups(graph), kind))
    model.load_state_dict(state)
    return model.eval()


def train_distilled(
    model_name: str,
    graph: SyntheticGraph,
    recipe: DistilledRecipe = DistilledRecipe(),
    seed: int = 0,
    device="cpu",
    task_type="binary",
    spec: ModelSpec = ModelSpec(),
    *,
    lr: float = 0.005,
    val_split: SampledSplit | None = None,
) -> TrainResult:
    """Train on the synthetic graph only, with its soft labels, and on its earlier examples
    (``graph.earlier``), each through the view of its shift (``seed_views``), for
    ``recipe.steps`` optimizer steps: each step one batch of ``recipe.batch_size_for(model_name)`` examples
    (its inputs cut to what its seeds read, ``layer_trim.batch_inputs``) or, without a batch
    size, every example (``DistilledRecipe``).

    Binary: BCE against probabilities (clipped to [0, 1]); multiclass: CE against class
    probabilities (rows clipped at 0 and renormalised); regression: L1 on targets
    standardised by the synthetic labels' mean and std. When ``val_split`` is given, the
    real val split only picks the checkpoint (every ``recipe.eval_every`` steps and at the
    last), as early stopping does for full training, and stops it after ``recipe.patience``
    scorings without improvement. ``TrainResult.epochs`` counts the steps taken.
    """
    kind = task_kind(task_type)
    metric, _ = primary_metric(kind)
    data = graph.to_hetero()
    seed_type = graph.schema.node_type(graph.target_table)
    groups = seed_groups(graph)  # every labelled example, by the shift it reads the graph at
    y = _soft_targets(groups, kind)
    torch.manual_seed(seed)
    model = _graph_model(model_name, graph, kind, spec, y)
    if kind == REGRESSION:
        y = (y - model.target_loc.item()) / model.target_scale.item()
    temporal = spec.temporal and bool(graph.age)  # as ``_graph_model`` built it
    model.to(device)
    data = data.to(device)
    target = torch.as_tensor(y, dtype=torch.float32, device=device)
    x_dict, edge_index_dict = data.x_dict, data.edge_index_dict
    ages = {nt: data[nt].age for nt in data.node_types if "age" in data[nt]} if temporal else None
    # A graph with earlier examples is read per shift, capped as the sampler caps, in one
    # unrolled graph (``seed_views``); any other graph (or one without ages) as stored.
    if ages and graph.earlier is not None:
        ex = unroll(x_dict, edge_index_dict, ages, groups, seed_type, list(spec.num_neighbors), spec.num_layers)
        x_dict, edge_index_dict, ages, index = ex.x, ex.edge_index, ex.ages, ex.seed
    else:
        index = torch.as_tensor(np.concatenate([g.node for g in groups]), device=device)
    # each layer computes only what reaches a labelled example (``layer_trim``)
    rng = np.random.default_rng(seed)
    n, size = len(index), recipe.batch_size_for(model_name)
    parts, inputs, by_dst = [np.arange(n)], model_inputs, None
    if size is not None and n > size:
        order = rng.permutation(n)
        parts, inputs = [np.sort(order[i : i + size]) for i in range(0, n, size)], batch_inputs
        by_dst = EdgesByDst({et: (ei[0].cpu().numpy(), ei[1].cpu().numpy()) for et, ei in edge_index_dict.items()},
                            {nt: int(v.shape[0]) for nt, v in x_dict.items()})
    built: dict[int, tuple[TrimmedGraph, torch.Tensor]] = {}
    kept = [0]  # bytes of the batches in ``built``

    def batch(i: int) -> tuple[TrimmedGraph, torch.Tensor]:
        """Batch ``i``'s inputs and targets, built when first drawn and kept for later passes
        while the kept ones stay within ``BATCH_CACHE_BYTES``; past it, built again when drawn
        (a large coreset's batches, each drawn about once, never all in memory at once)."""
        if i in built:
            return built[i]
        out = (inputs(model_name, x_dict, edge_index_dict, ages, seed_type, index[torch.as_tensor(parts[i])],
                      spec.num_layers, by_dst), target[torch.as_tensor(parts[i])])
        if kept[0] + out[0].nbytes() <= BATCH_CACHE_BYTES:
            built[i], kept[0] = out, kept[0] + out[0].nbytes()
        return out

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    queue: list[int] = []

    def train_step() -> float:
        """One step on the next batch of a pass over them in a seeded order; its loss."""
        if not queue:
            queue.extend(rng.permutation(len(parts)).tolist() if len(parts) > 1 else [0])
        x_b, y_b = batch(queue.pop(0))
        loss = task_loss(kind, x_b.outputs(model, seed_type), y_b, GNN_REGRESSION_LOSS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    fit = _fit(model, recipe.steps, train_step, val_split, kind, device, eval_every=recipe.eval_every,
               patience=recipe.patience)
    return TrainResult(model, fit.seconds, fit.best, metric, fit.epochs, fit.losses, fit.val_seconds)
