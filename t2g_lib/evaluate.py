"""Stage ``evaluation_scores``: train GNNs on each distilled / coreset graph, test them on
the real test split, and tabulate them against the full-data reference (``full_training``).

Before any training, a leakage check (``leakage.check_split_leakage``) recomputes, from the
database's own time columns, whether any sampled row postdates the label it serves; when one
does, or the full-data reference found one, no model is trained and the report says where
(the asset's blocking check then fails).
"""

from __future__ import annotations

import math
from dataclasses import replace
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from relbench.base import Database

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.eval_splits import label_classes, prepare_splits
from t2g_lib.full_training import FULL, FullTraining, full_nbytes
from t2g_lib.gbm_reference import GBMReference
from t2g_lib.graph import SyntheticGraph
from t2g_lib.krr_select import JudgedModel
from t2g_lib.leakage import LeakageReport
from t2g_lib.metrics import MULTICLASS, is_better, primary_metric, task_kind, utility_retention
from t2g_lib.models import ModelSpec
from t2g_lib.task_data import TaskData
from t2g_lib.train import label_frame, train_distilled, train_full

FEW_LABELS = "few_labels"
"""Method name of the label-subsample reference (full database, as many labels as T2G)."""
FEW_LABELS_EPOCHS = 20

COLUMNS = [
    "model", "method", "metric", "value", "value_std", "val_value", "storage_bytes",
    "compression_ratio", "distill_seconds", "train_seconds", "epochs_trained", "utility_retention",
    "retention_vs_same_model", "speedup", "n_seeds",
]


def evaluate_methods(
    methods: dict[str, SyntheticGraph],
    models: list[str],
    db: Database,
    features: dict[str, np.ndarray],
    task: TaskData,
    full: FullTraining | None = None,
    seeds: Iterable[int] = (0,),
    gbm: GBMReference | None = None,
    few_labels: int | None = None,
    *,
    trained: Iterable[JudgedModel] = (),
    distill_seconds: dict[str, float] | None = None,
    recipe: DistilledRecipe = DistilledRecipe(),
    batch_size: int = 512,
    device="cpu",
    spec: ModelSpec = ModelSpec(),
    log: Callable[[str], None] = lambda _: None,
) -> pd.DataFrame:
    """One row per model x method (``"full"`` rows from ``full`` and ``gbm``), averaged over
    seeds.

    Every model is trained on each graph only (real val picks the checkpoint) and tested on
    the real test split through the temporal sampler. ``utility_retention`` (see
    ``metrics.utility_retention``) is relative to the best full-data row (any model, the
    GBM reference included), ``retention_vs_same_model`` and ``speedup`` (full training
    seconds / this method's) to the same model's full-data row; NaN without one. With
    ``few_labels``, each model is also trained on the full database as context with only
    that many train labels (drawn per seed): ``FEW_LABELS``, the upper reference of what so
    few labelled examples can teach when nothing else is distilled. The leakage report
    is kept in ``df.attrs["leakage"]``; a failed check (here or in ``full``) returns a table
    without rows before any training. A model in ``trained`` (the GNN judge's) stands in for
    training the same model (name, seed, recipe, spec) on the same graph (digest) again.
    """
    if FULL in methods:
        raise ValueError(f"method name {FULL!r} is reserved for full-data training")
    kind = task_kind(task.task_type)
    seeds = list(seeds)
    distill_seconds = distill_seconds or {}
    splits = prepare_splits(db, features, task, batch_size, spec.num_neighbors)
    report = splits.leakage
    if report.passed and full is not None and not full.leakage["passed"]:
        report = LeakageReport(**full.leakage)
    if not report.passed:
        log(f"temporal leakage of up to {report.max_leak_seconds} s: no model is trained")
        return _empty_scores(report)
    full_bytes = full.storage_bytes if full is not None else full_nbytes(db, features, task)

    records: list[dict] = [] if gbm is None else [{**gbm.record, "storage_bytes": full_bytes}]
    digests = {method: graph.fingerprint() for method, graph in methods.items()}
    scored: dict[tuple[str, int, str], dict] = {}  # a graph published under two names trains once
    reuse = {judged.key(): judged.result for judged in trained}
    for model_name in models:
        for seed in seeds:
            reference = full.record(model_name, seed) if full is not None else None
            if full is not None and reference is None:
                raise ValueError(f"full_training has no {model_name} model trained with seed {seed}")
            if reference is not None:
                records.append(reference)
            if few_labels:
                res = _train_few_labels(model_name, db, features, task, few_labels, seed, splits, device,
                                        spec, batch_size, log)
                records.append(splits.scored(model_name, FEW_LABELS, seed, res, full_bytes, math.nan, device))
            for method, graph in methods.items():
                seconds = float(distill_seconds.get(method, math.nan))
                key = (model_name, seed, digests[method])
                if key in scored:
                    log(f"{model_name} seed {seed}: {method} is the graph already scored, the same scores")
                    records.append({**scored[key], "method": method, "distill_seconds": seconds})
                    continue
                res = reuse.get((model_name, seed, recipe, spec, digests[method]))
                if res is not None:
                    log(f"{model_name} seed {seed}: {method} is the graph the GNN judge trained this model on, "
                        f"its model reused (val {res.val_metric:.4f})")
                else:
                    res = train_distilled(model_name, graph, recipe, seed, device, kind, spec,
                                          val_split=splits.val)
                scored[key] = splits.scored(model_name, method, seed, res, graph.nbytes(), seconds, device)
                records.append(scored[key])

    if not records:
        return _empty_scores(report)
    out = score_table(pd.DataFrame(records), kind, full_bytes, splits.trivial)
    out.attrs["leakage"] = report._asdict()
    out.attrs["trivial_score"] = splits.trivial
    out.attrs["full_storage_bytes"] = full_bytes
    return out


def _train_few_labels(model_name, db, features, task, n, seed, splits, device, spec, batch_size, log):
    """``train_full`` on ``n`` train labels drawn with ``seed`` for up to ``FEW_LABELS_EPOCHS``
    (early-stopped); small batches, so that a few hundred labels still make several steps an epoch."""
    train = label_frame(task.train)
    few = replace(task, train=train.sample(n=min(n, len(train)), random_state=seed).reset_index(drop=True))
    log(f"{model_name} seed {seed}: the full database as context, {len(few.train)} train labels")
    return train_full(
        model_name, db, features, few, FEW_LABELS_EPOCHS, min(batch_size, 32), seed, device, spec,
        patience=5, num_classes=label_classes(task) if splits.kind == MULTICLASS else None,
        sampler=splits.sampler, val_split=splits.val,
    )


def score_table(per_seed: pd.DataFrame, task_type, full_bytes: int, baseline: float) -> pd.DataFrame:
    """Per-seed records -> one row per model x method: mean and std of the primary metric
    over seeds, the other metrics' means, compression, and retention against the best
    full-data row and against the same model's (NaN where there is none), and speedup."""
    kind = task_kind(task_type)
    metric, _ = primary_metric(kind)
    if "epochs_trained" not in per_seed:  # records of the GBM, or stored before the count was kept
        per_seed = per_seed.assign(epochs_trained=np.nan)
    fixed = {"model", "method", "seed", "val_value", "storage_bytes", "distill_seconds", "train_seconds",
             "epochs_trained"}
    extra = [c for c in per_seed.columns if c not in fixed and c != metric]
    agg = (
        per_seed.groupby(["model", "method"], sort=False)
        .agg(
            value=(metric, "mean"),
            value_std=(metric, lambda v: float(np.std(v))),
            val_value=("val_value", "mean"),
            storage_bytes=("storage_bytes", "first"),
            distill_seconds=("distill_seconds", "first"),
            train_seconds=("train_seconds", "mean"),
            epochs_trained=("epochs_trained", "mean"),
            n_seeds=("seed", "count"),
            **{m: (m, "mean") for m in extra},
        )
        .reset_index()
    )
    agg["metric"] = metric
    agg["compression_ratio"] = full_bytes / agg["storage_bytes"]
    reference = agg[agg["method"] == FULL].set_index("model")
    best_full = math.nan
    for value in reference["value"]:
        best_full = value if is_better(value, best_full, kind) else best_full
    agg["utility_retention"] = [utility_retention(v, best_full, kind, baseline) for v in agg["value"]]
    agg["retention_vs_same_model"] = [
        utility_retention(row.value, reference.at[row.model, "value"], kind, baseline)
        if row.model in reference.index else math.nan
        for row in agg.itertuples()
    ]
    agg["speedup"] = [
        reference.at[row.model, "train_seconds"] / row.train_seconds
        if row.model in reference.index and row.train_seconds > 0 else math.nan
        for row in agg.itertuples()
    ]
    return agg[COLUMNS + extra].copy()


def _empty_scores(leakage: LeakageReport) -> pd.DataFrame:
    """A score table without rows, carrying the leakage report that explains why."""
    out = pd.DataFrame(columns=COLUMNS)
    out.attrs["leakage"] = leakage._asdict()
    return out


def _cell(value) -> str:
    """A number to 3 decimals (a dash for NaN), or text with pipes escaped."""
    if isinstance(value, (float, np.floating)):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def scores_markdown(df: pd.DataFrame) -> str:
    """The score table as GitHub markdown, one row per model x method. "retention" is
    against the best full-data row (GBM reference included), "(same model)" against the
    same model trained on the full database."""
    header = ["model", "method", "metric", "test (mean ± std)", "val", "retention",
              "retention (same model)", "storage bytes", "compression", "distill s", "train s", "speedup"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in df.itertuples():
        cells = [
            _cell(r.model), _cell(r.method), _cell(r.metric),
            f"{_cell(float(r.value))} ± {_cell(float(r.value_std))}", _cell(float(r.val_value)),
            _cell(float(r.utility_retention)), _cell(float(r.retention_vs_same_model)),
            f"{int(r.storage_bytes):,}",
            f"{float(r.compression_ratio):,.1f}x", _cell(float(r.distill_seconds)),
            _cell(float(r.train_seconds)), _cell(float(r.speedup)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
