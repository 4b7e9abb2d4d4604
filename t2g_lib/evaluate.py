"""Stage 7, ``evaluation_scores``: train GNNs on each distilled / coreset graph and on the
full database, test all of them on the real test split, and tabulate what each costs.

Before any training, a leakage check (``check_leakage``) recomputes, from the database's
own time columns, whether any sampled row postdates the label it serves; when one does, no
model is trained and the report says where (the asset's blocking check then fails).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd
from relbench.base import Database
from torch_geometric.data import HeteroData

from t2g_lib.full_cache import FullRunCache
from t2g_lib.graph import GraphSchema, SyntheticGraph, fkey_index
from t2g_lib.metrics import MULTICLASS, primary_metric, task_kind, trivial_score, utility_retention
from t2g_lib.task_data import TaskData
from t2g_lib.temporal import to_seconds
from t2g_lib.train import SampledSplit, label_frame, make_sampler, train_distilled, train_full

FULL = "full"
"""Method name of the reference: the same GNN trained on the whole database."""

COLUMNS = [
    "model", "method", "metric", "value", "value_std", "val_value", "storage_bytes",
    "compression_ratio", "distill_seconds", "train_seconds", "utility_retention", "speedup",
    "n_seeds",
]


class LeakageReport(NamedTuple):
    """``passed`` is False when a sampled row is stamped after its seed's label time."""

    passed: bool
    max_leak_seconds: int
    examples: list[dict]


def check_leakage(
    db: Database,
    entity_table: str,
    samples: Iterable[tuple[HeteroData, np.ndarray]],
    max_examples: int = 5,
) -> LeakageReport:
    """Check sampled subgraphs against the label times they were drawn for.

    ``samples`` yields (subgraph, label time in seconds of each of its seeds); every node
    carries ``n_id`` (its row) and ``batch`` (its seed). Row times are read again from
    ``db`` rather than trusted from the sampler. ``max_leak_seconds`` is the largest
    amount by which a row postdates its seed's label (0 when none does); ``examples``
    name the worst offenders by table and row.
    """
    schema = GraphSchema.from_database(db)
    row_times = {}
    for table in schema.tables:
        col = db.table_dict[table].time_col
        if col is not None:
            row_times[table] = to_seconds(db.table_dict[table].df[col])
    seed_nt = schema.node_type(entity_table)
    worst, found = 0, []
    for sub, label_times in samples:
        label_times = np.asarray(label_times, dtype=np.int64)
        seed_rows = sub[seed_nt].n_id.numpy()[: len(label_times)]
        for table, times in row_times.items():
            store = sub[schema.node_type(table)]
            if store.num_nodes == 0:
                continue
            rows, seeds = store.n_id.numpy(), store.batch.numpy()
            leak = times[rows] - label_times[seeds]
            bad = np.flatnonzero(leak > 0)
            if len(bad) == 0:
                continue
            worst = max(worst, int(leak[bad].max()))
            for i in bad[np.argsort(-leak[bad], kind="stable")][:max_examples]:
                found.append({
                    "table": table,
                    "row": int(rows[i]),
                    "row_time": str(pd.Timestamp(int(times[rows[i]]), unit="s")),
                    "seed_row": int(seed_rows[seeds[i]]),
                    "label_time": str(pd.Timestamp(int(label_times[seeds[i]]), unit="s")),
                    "leak_seconds": int(leak[i]),
                })
    found.sort(key=lambda e: -e["leak_seconds"])
    return LeakageReport(worst == 0, worst, found[:max_examples])


def check_split_leakage(db: Database, entity_table: str, splits: dict[str, SampledSplit]) -> LeakageReport:
    """``check_leakage`` over several label splits; each example names its ``split``."""
    worst, found = 0, []
    for name, split in splits.items():
        report = check_leakage(db, entity_table, split.samples())
        worst = max(worst, report.max_leak_seconds)
        found += [{"split": name, **e} for e in report.examples]
    found.sort(key=lambda e: -e["leak_seconds"])
    return LeakageReport(worst == 0, worst, found[:5])


def full_nbytes(
    db: Database, features: dict[str, np.ndarray], train_table, task_type, num_classes: int = 1
) -> int:
    """The full database in ``SyntheticGraph.nbytes``'s accounting: every row's float32
    features, an int32 pair per child row and relation, float32 train labels."""
    schema = GraphSchema.from_database(db)
    total = sum(len(db.table_dict[t].df) * np.shape(features[t])[1] * 4 for t in schema.tables)
    total += sum(len(fkey_index(db, rel)) * 2 * 4 for rel in schema.relations)
    width = num_classes if task_kind(task_type) == MULTICLASS else 1
    return int(total + len(label_frame(train_table)) * width * 4)


def evaluate_methods(
    methods: dict[str, SyntheticGraph],
    models: list[str],
    db: Database,
    features: dict[str, np.ndarray],
    task: TaskData,
    full: bool = True,
    seeds: Iterable[int] = (0,),
    *,
    distill_seconds: dict[str, float] | None = None,
    full_storage_bytes: int | None = None,
    epochs_full: int = 20,
    epochs_distilled: int = 200,
    batch_size: int = 512,
    device="cpu",
    num_neighbors=(8, 8),
    hidden: int = 64,
    num_layers: int = 2,
    leak_check_rows: int = 2000,
    full_cache: FullRunCache | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> pd.DataFrame:
    """One row per model x method (``"full"`` included when ``full``), averaged over seeds.

    Every model is trained on each graph only (real val picks the checkpoint) and tested on
    the real test split through the temporal sampler. ``utility_retention`` (see
    ``metrics.utility_retention``) and ``speedup`` (full training seconds / this method's)
    are relative to the same model on the full database; NaN without ``full``. With
    ``full_cache``, a full-data record stored by an earlier budget is reused. The leakage
    report is kept in ``df.attrs["leakage"]``; a failed check returns a table without rows
    before any training, and so does a full-training batch whose sampler reports a row later
    than its seed.
    """
    if FULL in methods:
        raise ValueError(f"method name {FULL!r} is reserved for full-data training")
    kind = task_kind(task.task_type)
    metric, _ = primary_metric(kind)
    seeds = list(seeds)
    distill_seconds = distill_seconds or {}
    sampler = make_sampler(db, num_neighbors)
    train_df = label_frame(task.train)
    splits = {
        name: SampledSplit(sampler, features, table, task, batch_size)
        for name, table in (("val", task.val), ("test", task.test))
    }
    probe = train_df.sample(n=min(len(train_df), leak_check_rows), random_state=0)
    probe_split = SampledSplit(sampler, features, probe, task, batch_size, with_target=False)
    report = check_split_leakage(db, task.entity_table, {"train": probe_split, **splits})
    if not report.passed:
        log(f"temporal leakage of up to {report.max_leak_seconds} s: no model is trained")
        return _empty_scores(report)
    num_classes = 1
    if kind == MULTICLASS:
        widths = [np.asarray(g.y).shape[1] for g in methods.values()]
        labels = [train_df[task.target_col], label_frame(task.val)[task.target_col]]
        num_classes = max(widths + [int(max(np.asarray(y, dtype=np.int64).max() for y in labels)) + 1])
    full_bytes = full_storage_bytes or full_nbytes(db, features, train_df, kind, num_classes)
    test_y = splits["test"].y
    baseline = trivial_score(kind, train_df[task.target_col].to_numpy(), test_y)

    records: list[dict] = []

    def scored(model_name: str, method: str, seed: int, res, nbytes: int, dist_s: float) -> dict:
        """Score a trained model on real test seeds right away (models are not kept)."""
        return {
            "model": model_name, "method": method, "seed": seed,
            **splits["test"].score(res.model, device, kind),
            "val_value": res.val_metric, "storage_bytes": nbytes,
            "distill_seconds": dist_s, "train_seconds": res.seconds,
        }

    for model_name in models:
        for seed in seeds:
            if full:
                rec = full_cache.get(model_name, seed) if full_cache is not None else None
                if rec is None:
                    log(f"{model_name} seed {seed}: training on the full database ({len(train_df)} labels)")
                    res = train_full(
                        model_name, db, features, task, epochs_full, batch_size, seed, device,
                        num_neighbors, hidden=hidden, num_layers=num_layers,
                        num_classes=num_classes if kind == MULTICLASS else None,
                        sampler=sampler, val_split=splits["val"], log=log,
                    )
                    if res.max_leak_seconds > 0:  # the sampler's own measure over every train batch
                        log(f"temporal leakage of {res.max_leak_seconds} s in full-data training batches")
                        return _empty_scores(LeakageReport(False, res.max_leak_seconds, [
                            {"split": "train (full-data training batches)", "leak_seconds": res.max_leak_seconds}
                        ]))
                    rec = scored(model_name, FULL, seed, res, full_bytes, 0.0)
                    if full_cache is not None:
                        full_cache.put(model_name, seed, rec)
                else:
                    log(f"{model_name} seed {seed}: full-database scores reused from an earlier budget")
                records.append(rec)
            for method, graph in methods.items():
                res = train_distilled(
                    model_name, graph, epochs_distilled, seed, device, kind,
                    hidden=hidden, num_layers=num_layers, val_split=splits["val"],
                )
                records.append(scored(model_name, method, seed, res, graph.nbytes(),
                                      float(distill_seconds.get(method, math.nan))))

    if not records:
        return _empty_scores(report)
    out = score_table(pd.DataFrame(records), kind, full_bytes, baseline)
    out.attrs["leakage"] = report._asdict()
    out.attrs["trivial_score"] = baseline
    out.attrs["full_storage_bytes"] = full_bytes
    return out


def score_table(per_seed: pd.DataFrame, task_type, full_bytes: int, baseline: float) -> pd.DataFrame:
    """Per-seed records -> one row per model x method: mean and std of the primary metric
    over seeds, the other metrics' means, and compression, retention and speedup against
    the same model on the full database (NaN where that model has no full-data row)."""
    kind = task_kind(task_type)
    metric, _ = primary_metric(kind)
    fixed = {"model", "method", "seed", "val_value", "storage_bytes", "distill_seconds", "train_seconds"}
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
            n_seeds=("seed", "count"),
            **{m: (m, "mean") for m in extra},
        )
        .reset_index()
    )
    agg["metric"] = metric
    agg["compression_ratio"] = full_bytes / agg["storage_bytes"]
    reference = agg[agg["method"] == FULL].set_index("model")
    agg["utility_retention"] = [
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
    """The score table as GitHub markdown, one row per model x method."""
    header = ["model", "method", "metric", "test (mean ± std)", "val", "retention", "storage bytes",
              "compression", "distill s", "train s", "speedup"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in df.itertuples():
        cells = [
            _cell(r.model), _cell(r.method), _cell(r.metric),
            f"{_cell(float(r.value))} ± {_cell(float(r.value_std))}", _cell(float(r.val_value)),
            _cell(float(r.utility_retention)), f"{int(r.storage_bytes):,}",
            f"{float(r.compression_ratio):,.1f}x", _cell(float(r.distill_seconds)),
            _cell(float(r.train_seconds)), _cell(float(r.speedup)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
