"""Benchmark: the t2g chain on a bundled database, through Dagster, stage by stage.

Prints a markdown table and writes ``benchmarks/results/<date>.json`` and ``<date>.md``:
wall time and peak RSS after each stage, distilled vs source bytes, and (with --evaluate)
the score table of every model x method, over seeds.

    python -m benchmarks.run --tasks player-retention --ratios 0.01 --seeds 0 --evaluate
    python -m benchmarks.run --database completejourney --tasks household-active --evaluate
    python -m benchmarks.run --report sweep-a.json sweep-b.json --tag merged   # one report of several sweeps
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import tempfile
from pathlib import Path

import pandas as pd

from t2g_lib.data.bundled import BUNDLED

RESULTS = Path(__file__).parent / "results"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(
    database: str, tasks: list[str], ratios: list[str], seeds: list[int], evaluate: bool, models: str, epochs: int,
    tag: str = "",
) -> dict:
    from dagster import DagsterInstance

    from t2g_assets.definitions import build_definitions
    from t2g_assets.partitions import task_budget_key, task_partition_key
    from t2g_cli.console import quiet_console
    from t2g_cli.runner import DATABASE_JOB, TASK_JOB, chain_stages, register, run_job
    from t2g_lib.data.bundled import ensure_bundled

    data_dir = Path(os.environ.get("T2G_DATA_DIR", "data")).resolve()
    ensure_bundled(database, data_dir)
    stages_out, scores = [], []
    for seed in seeds:
        storage = Path(tempfile.mkdtemp(prefix=f"t2g-bench-{seed}-"))
        defs = build_definitions(
            data_dir=str(data_dir), storage_dir=str(storage), seed=seed,
            eval_models=[m for m in models.split(",") if m], eval_epochs=epochs, few_labels_reference=True,
            loggers={"console": quiet_console},  # the stages' INFO lines, not Dagster's DEBUG events
        )
        inst = DagsterInstance.ephemeral()
        register(inst, database, [task_budget_key(t, r) for t in tasks for r in ratios])

        def record(job_run, task="-", ratio="-"):
            for run in job_run.stages:
                stages_out.append({"database": database, "seed": seed, "task": task, "ratio": ratio, "stage": run.stage,
                                   "seconds": round(run.seconds, 2), "success": run.success,
                                   "peak_rss_mb": round(peak_rss_mb(), 1)})
                print(f"seed {seed} {task} {ratio} {run.stage}: {run.seconds:.1f}s ok={run.success}", flush=True)

        record(run_job(defs, DATABASE_JOB, database, inst))
        for task in tasks:
            for ratio in ratios:
                stages = chain_stages(defs, TASK_JOB, evaluate, compare=evaluate)
                key = task_partition_key(database, task, ratio)
                job_run = run_job(defs, TASK_JOB, key, inst, stages)
                record(job_run, task, ratio)
                if "comparison_scores" in job_run.materialized:  # also when a gate refused to publish
                    evaluated = defs.load_asset_value("comparison_scores", instance=inst, partition_key=key)
                    df = evaluated.assign(database=database, task=task, ratio=ratio, seed=seed)
                    scores.extend(df.to_dict(orient="records"))
                checkpoint({"stages": stages_out, "scores": scores}, seeds, tag)
    return {"stages": stages_out, "scores": scores}


def checkpoint(partial: dict, seeds: list[int], tag: str = "") -> None:
    """What is measured so far, so a long sweep that dies keeps its finished runs."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"partial-{tag or 'run'}-seeds-" + "-".join(map(str, seeds)) + ".json"
    (RESULTS / name).write_text(json.dumps(partial, indent=1, default=str))


def seed_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per task x ratio x model x method (seed runs are rows)."""
    return scores.groupby(["task", "ratio", "model", "method"], sort=False).agg(
        metric=("metric", "first"), value=("value", "mean"), value_std=("value", "std"),
        retention=("utility_retention", "mean"), retention_std=("utility_retention", "std"),
        compression_ratio=("compression_ratio", "mean"), train_s=("train_seconds", "mean"),
        speedup=("speedup", "mean"), n=("seed", "count")).reset_index().fillna({"value_std": 0.0, "retention_std": 0.0})


def report_markdown(result: dict, plots: dict[str, str]) -> str:
    stages = pd.DataFrame(result["stages"])
    timing = stages.groupby(["task", "ratio", "stage"], sort=False).agg(
        seconds=("seconds", "mean"), spread=("seconds", "std"), rss=("peak_rss_mb", "max"),
        ok=("success", "all"), n=("seed", "count")).reset_index()
    databases = ", ".join(sorted({str(r.get("database", "lahman")) for r in result["stages"]}))
    md = [f"## Stage timings ({databases}, through Dagster; mean over seeds)", "",
          "| task | ratio | stage | seconds | std | peak RSS MB | all succeeded | seeds |",
          "|---|---|---|---:|---:|---:|---|---:|"]
    md += [f"| {r.task} | {r.ratio} | {r.stage} | {r.seconds:.1f} | {0 if pd.isna(r.spread) else r.spread:.1f} | "
           f"{r.rss:.0f} | {r.ok} | {r.n} |" for r in timing.itertuples()]
    if result["scores"]:
        agg = seed_summary(pd.DataFrame(result["scores"]))
        md += ["", "## Scores (real test split; mean ± std over seeds)", "",
               "| task | ratio | model | method | metric | value | retention | compression | train s | speedup | seeds |",
               "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        md += [f"| {r.task} | {r.ratio} | {r.model} | {r.method} | {r.metric} | {r.value:.4f} ± {r.value_std:.4f} | "
               f"{r.retention:.3f} ± {r.retention_std:.3f} | {r.compression_ratio:.1f} | {r.train_s:.1f} | "
               f"{r.speedup:.1f} | {r.n} |" for r in agg.itertuples()]
        md += ["", *[f"![{task}: test metric against compression]({name})" for task, name in plots.items()]]
    return "\n".join(md)


def plot_tasks(result: dict, stamp: str) -> dict[str, str]:
    """One PNG per task: metric against compression, one line per method, seed spread as bars."""
    from t2g_lib.plots import plot_metric_vs_compression

    if not result["scores"]:
        return {}
    agg = seed_summary(pd.DataFrame(result["scores"]))
    out = {}
    for task, rows in agg.groupby("task", sort=False):
        name = f"{stamp}-{task}.png"
        (RESULTS / name).write_bytes(plot_metric_vs_compression(rows))
        out[task] = name
    return out


def run_seed(kwargs: dict) -> dict:
    """One seed's sweep in its own process, with its share of the cores."""
    import torch

    torch.set_num_threads(kwargs.pop("threads"))
    return run(**kwargs)


def run_parallel(jobs: int, seeds: list[int], **kwargs) -> dict:
    """Seeds spread over ``jobs`` processes (each with its own storage and instance)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if jobs <= 1:
        return run(seeds=seeds, **kwargs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        parts = list(pool.map(run_seed, [{**kwargs, "seeds": [s], "threads": threads} for s in seeds]))
    return {key: [row for part in parts for row in part[key]] for key in ("stages", "scores")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default="lahman", choices=sorted(BUNDLED))
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the database's tasks)")
    ap.add_argument("--ratios", default="0.01")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--models", default="sage,hgt,han")
    ap.add_argument("--epochs", type=int, default=5, help="full-data training epochs (early-stopped on val)")
    ap.add_argument("--tag", default="", help="suffix of the result files, to keep several sweeps of one day")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in this many parallel processes")
    ap.add_argument("--evaluate", action="store_true")
    ap.add_argument("--report", nargs="+", metavar="JSON",
                    help="run nothing: merge these result files (earlier sweeps, partial ones included) into one report")
    args = ap.parse_args()
    if args.report:
        parts = [json.loads(Path(f).read_text()) for f in args.report]
        result = {key: [row for part in parts for row in part[key]] for key in ("stages", "scores")}
    else:
        result = run_parallel(
            args.jobs, [int(s) for s in args.seeds.split(",")], database=args.database,
            tasks=args.tasks.split(",") if args.tasks else list(BUNDLED[args.database].tasks),
            ratios=args.ratios.split(","), evaluate=args.evaluate, models=args.models, epochs=args.epochs,
            tag=args.tag,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.date.today().isoformat() + (f"-{args.tag}" if args.tag else "")
    (RESULTS / f"{stamp}.json").write_text(json.dumps({"args": vars(args), **result}, indent=1, default=str))
    md = report_markdown(result, plot_tasks(result, stamp))
    (RESULTS / f"{stamp}.md").write_text(md + "\n")
    if not args.report:
        for partial in RESULTS.glob(f"partial-{args.tag or 'run'}-seeds-*.json"):
            partial.unlink()
    print(md)


if __name__ == "__main__":
    main()
