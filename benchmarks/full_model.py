"""Benchmark: the full-data yardstick. The GBM reference and the full-data GNNs (SAGE, HGT,
HAN), per model variant (aggregation, relative-time encoding, neighbours per hop), over
training seeds, on a bundled database.

The database stages run once through Dagster (seed 0); every model trains on the same row
embeddings (``cluster_pretraining``), so rows differ by the model and its seed only. Each
finished row is appended, with the commit it ran on, to
``benchmarks/results/full-model-<database>.jsonl``; a rerun skips rows already there, so a
sweep that is stopped resumes. ``--report`` writes the markdown table from that file.

    python -m benchmarks.full_model --database lahman --models sage,hgt,han --seeds 0,1,2 --epochs 3
    python -m benchmarks.full_model --database completejourney --report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from t2g_lib.data.bundled import BUNDLED

RESULTS = Path(__file__).parent / "results"

VARIANTS = {
    "mean, no time, 8/8 (before)": dict(aggr="mean", temporal=False, num_neighbors=(8, 8)),
    "sum, no time, 8/8": dict(aggr="sum", temporal=False, num_neighbors=(8, 8)),
    "mean, time, 8/8": dict(aggr="mean", temporal=True, num_neighbors=(8, 8)),
    "sum, time, 8/8": dict(aggr="sum", temporal=True, num_neighbors=(8, 8)),
    "sum, time, 16/8 (default)": dict(aggr="sum", temporal=True, num_neighbors=(16, 8)),
}


def commit() -> str:
    """The commit a row ran on; "+dirty" when the code (not results) differed from it."""
    git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True,  # noqa: E731
                                       cwd=Path(__file__).parent.parent).stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "t2g_lib", "t2g_assets", "benchmarks/*.py")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def prepare(data_dir: Path, database: str):
    """The database stages through Dagster; the values the references train on."""
    from dagster import DagsterInstance

    from t2g_assets.definitions import build_definitions
    from t2g_cli.console import quiet_console
    from t2g_cli.runner import DATABASE_JOB, register, run_job
    from t2g_lib.data.bundled import ensure_bundled
    from t2g_lib.data.format import load_dataset, parse_time_columns

    folder = ensure_bundled(database, data_dir)
    defs = build_definitions(data_dir=str(data_dir), storage_dir=tempfile.mkdtemp(prefix="t2g-full-"),
                             loggers={"console": quiet_console})
    inst = DagsterInstance.ephemeral()
    register(inst, database, [])
    run_job(defs, DATABASE_JOB, database, inst)
    load = lambda name: defs.load_asset_value(name, instance=inst, partition_key=database)  # noqa: E731
    db = parse_time_columns(load_dataset(folder).get_db(upto_test_timestamp=False))
    return db, load("raw_tables"), load("validated_schema"), load("cluster_pretraining")


def run(database: str, tasks: list[str], seeds: list[int], models: list[str], variants: list[str], epochs: int,
        out: Path) -> None:
    from t2g_lib.full_training import train_full_models
    from t2g_lib.gbm_reference import fit_gbm_reference
    from t2g_lib.models import ModelSpec
    from t2g_lib.task_data import column_types, hidden_columns, task_from_snapshot
    from t2g_lib.task_data import read_task_labels

    data_dir = Path(os.environ.get("T2G_DATA_DIR", "data")).resolve()
    done = {row_key(r) for r in read_rows(out)}
    code = commit()  # the code this process runs, whatever is committed while it runs
    db, raw, schema, pre = prepare(data_dir, database)
    labels = read_task_labels(data_dir / database)
    runs = [("gbm", "gbm")] + [(m, v) for m in models for v in variants]
    for name in tasks:
        task = task_from_snapshot(name, raw["tasks"][name], labels[name][1])
        for seed in seeds:
            for model, variant in runs:
                if (name, model, variant, seed) in done:
                    continue
                t0 = time.perf_counter()
                if model == "gbm":
                    ref = fit_gbm_reference(db, task, column_types(schema), hidden_columns(raw["tasks"]), seed)
                    record = ref.record
                else:
                    spec = ModelSpec(**VARIANTS[variant])
                    full = train_full_models(db, pre.embeddings, task, [model], [seed], epochs=epochs, spec=spec)
                    record = full.records.iloc[0].to_dict()
                row = {"task": name, "model": model, "variant": variant, "seed": seed, "epochs": epochs,
                       "commit": code,
                       "seconds": round(time.perf_counter() - t0, 1),
                       **{k: v for k, v in record.items() if k not in ("model", "method", "seed")}}
                with out.open("a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
                print(f"{name} {model} {variant} seed {seed}: {row}", flush=True)


def read_jsonl(path: Path) -> list[dict]:
    """The rows a resumable benchmark has appended so far (none before its first)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def read_rows(path: Path) -> list[dict]:
    """The finished rows, the first of each (task, model, variant, seed) only."""
    rows = read_jsonl(path)
    for r in rows:  # rows from before HGT/HAN name no model: SAGE, or the GBM
        r.setdefault("model", "gbm" if r["variant"] == "gbm" else "sage")
    first: dict[tuple, dict] = {}
    for r in rows:
        first.setdefault(row_key(r), r)
    return list(first.values())


def row_key(row: dict) -> tuple:
    return row["task"], row["model"], row["variant"], row["seed"]


def epochs_trained(rows: pd.DataFrame) -> str:
    """Epochs full-data training ran (min-max over seeds; early stopping ends it before the
    cap), or '-' for the GBM and rows recorded before the count was kept."""
    if "epochs_trained" not in rows or rows["epochs_trained"].isna().all():
        return "-"
    n = rows["epochs_trained"].dropna().astype(int)
    return f"{n.min()}-{n.max()} of {int(rows['epochs'].max())}" if n.min() != n.max() else f"{n.min()} of {int(rows['epochs'].max())}"


def report(path: Path) -> str:
    """Mean ± std over seeds per task and variant of the task's primary metric."""
    rows = pd.DataFrame(read_rows(path))
    lines = ["| task | model | metric | test (mean ± std) | val | seconds | epochs trained | seeds | commits |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for (task, model, variant), g in rows.groupby(["task", "model", "variant"], sort=False):
        metric = "auroc" if "auroc" in g and g["auroc"].notna().any() else "mae" if "mae" in g else "accuracy"
        lines.append(
            f"| {task} | {'gbm' if model == 'gbm' else model.upper() + ' ' + variant} | {metric} | "
            f"{g[metric].mean():.4f} ± {g[metric].std(ddof=0):.4f} | {g['val_value'].mean():.4f} | "
            f"{g['seconds'].mean():.0f} | {epochs_trained(g)} | {len(g)} | {', '.join(sorted(set(g['commit'])))} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default="lahman", choices=sorted(BUNDLED))
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the database's tasks)")
    ap.add_argument("--models", default="sage", help="comma-separated GNNs: sage,hgt,han")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="sum, time, 16/8 (default)",
                    help="';'-separated names of VARIANTS ('all' for every one)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--report", action="store_true", help="run nothing: write the markdown table")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"full-model-{args.database}.jsonl"
    if not args.report:
        variants = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(";")]
        run(args.database, args.tasks.split(",") if args.tasks else list(BUNDLED[args.database].tasks), [int(s) for s in args.seeds.split(",")],
            args.models.split(","), variants, args.epochs, out)
    md = report(out)
    (RESULTS / f"full-model-{args.database}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
