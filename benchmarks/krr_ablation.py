"""Benchmark: what the KRR distillation's representation reads, as measured ablation rows.

Per task, budget and seed: one SBM structure, then one KRR distillation per variant
(``VARIANTS``: mean or sum aggregation in the propagation, row ages or none, the
pseudo-label term or none), then the evaluation GNN (SAGE, ``ModelSpec()``) trained on each
distilled graph and scored on the real test split. Retention is against the best full-data
mean of ``full-model-<database>.jsonl`` (the yardstick benchmark), with the same trivial
score. Each row is appended with its commit to ``benchmarks/results/krr-ablation-<database>.jsonl``;
a rerun skips finished rows; ``--report`` writes the markdown table.

    python -m benchmarks.krr_ablation --database lahman --tasks player-retention --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from benchmarks.full_model import RESULTS, commit, prepare, read_jsonl, read_rows as read_full_rows
from t2g_lib.data.bundled import BUNDLED

VARIANTS: dict[str, dict] = {
    "mean, no time (shipped)": {},
    "sum, no time": {"aggr": "sum"},
    "mean, time": {"temporal": True},
    "sum, time": {"aggr": "sum", "temporal": True},
    "sum, time, no pseudo-labels": {"aggr": "sum", "temporal": True, "beta": 0.0},
}


def run(database: str, tasks: list[str], ratio: str, seeds: list[int], variants: list[str], out: Path) -> None:
    from t2g_lib.evaluate import evaluate_methods
    from t2g_lib.krr import distill_features
    from t2g_lib.krr_config import KRRConfig
    from t2g_lib.metrics import primary_metric, task_kind
    from t2g_lib.sbm import budget_for, generate_sbm
    from t2g_lib.task_data import read_task_labels, task_from_snapshot

    data_dir = Path(os.environ.get("T2G_DATA_DIR", "data")).resolve()
    done = {(r["task"], r["ratio"], r["variant"], r["seed"]) for r in read_jsonl(out)}
    code = commit()
    db, raw, _, pre = prepare(data_dir, database)
    labels = read_task_labels(data_dir / database)
    for name in tasks:
        task = task_from_snapshot(name, raw["tasks"][name], labels[name][1])
        metric = primary_metric(task_kind(task.task_type))[0]
        for seed in seeds:
            todo = [v for v in variants if (name, ratio, v, seed) not in done]
            if not todo:
                continue
            structure = generate_sbm(db, pre.pseudo_labels, pre.centroids, budget_for(db, ratio),
                                     task.entity_table, seed)
            graphs, hist = {}, {}
            for v in todo:
                t0 = time.perf_counter()
                graphs[v], hist[v] = distill_features(structure, pre.embeddings, pre.pseudo_labels, pre.centroids,
                                                      db, task, KRRConfig(seed=seed, **VARIANTS[v]), log=lambda _: None)
                hist[v]["wall"] = time.perf_counter() - t0
                print(f"{name} {ratio} seed {seed} {v}: KRR val {hist[v]['best_score']:.4f} "
                      f"in {hist[v]['wall']:.0f}s", flush=True)
            table = evaluate_methods(graphs, ["sage"], db, pre.embeddings, task, seeds=[seed], epochs_distilled=100)
            for r in table.itertuples():
                row = {"task": name, "ratio": ratio, "variant": r.method, "seed": seed, "commit": code,
                       "metric": metric, "test": r.value, "val": r.val_value, "trivial": table.attrs["trivial_score"],
                       "krr_val": hist[r.method]["best_score"], "krr_start": hist[r.method]["start_score"],
                       "distill_seconds": hist[r.method]["wall"], "train_seconds": r.train_seconds,
                       "bytes": int(r.storage_bytes)}
                with out.open("a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
                print(row, flush=True)


def best_full(database: str) -> dict[str, float]:
    """Per task, the best full-data mean test score of the yardstick benchmark."""
    rows = pd.DataFrame(read_full_rows(RESULTS / f"full-model-{database}.jsonl"))
    out = {}
    for task, g in rows.groupby("task"):
        metric = "auroc" if "auroc" in g and g["auroc"].notna().any() else "mae"
        means = g.groupby(["model", "variant"])[metric].mean()
        out[task] = float(means.max() if metric == "auroc" else means.min())
    return out


def report(database: str, path: Path) -> str:
    rows = pd.DataFrame(read_jsonl(path))
    full = best_full(database)
    rows["retention"] = [(r.test - r.trivial) / (full[r.task] - r.trivial) for r in rows.itertuples()]
    lines = ["| task | budget | KRR variant | metric | test (mean ± std) | retention (mean ± std) | KRR surrogate val "
             "| GNN val | distill s | seeds | commits |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for (task, ratio, variant), g in rows.groupby(["task", "ratio", "variant"], sort=False):
        lines.append(
            f"| {task} | {ratio} | {variant} | {g['metric'].iloc[0]} | {g['test'].mean():.4f} ± {g['test'].std(ddof=0):.4f} "
            f"| {g['retention'].mean():.3f} ± {g['retention'].std(ddof=0):.3f} | {g['krr_val'].mean():.4f} "
            f"| {g['val'].mean():.4f} | {g['distill_seconds'].mean():.0f} | {len(g)} | {', '.join(sorted(set(g['commit'])))} |"
        )
    return "\n".join(lines) + f"\n\nRetention against the best full-data mean per task: {full}.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default="lahman", choices=sorted(BUNDLED))
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the database's tasks)")
    ap.add_argument("--ratio", default="0.01")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--variants", default="all", help="';'-separated names of VARIANTS, or 'all'")
    ap.add_argument("--report", action="store_true", help="run nothing: write the markdown table")
    args = ap.parse_args()
    out = RESULTS / f"krr-ablation-{args.database}.jsonl"
    if not args.report:
        variants = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(";")]
        tasks = args.tasks.split(",") if args.tasks else list(BUNDLED[args.database].tasks)
        run(args.database, tasks, args.ratio, [int(s) for s in args.seeds.split(",")], variants, out)
    md = report(args.database, out)
    (RESULTS / f"krr-ablation-{args.database}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
