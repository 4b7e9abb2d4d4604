"""Benchmark: the full-data yardstick. The GBM reference and the full-data GNN, per model
variant (aggregation, relative-time encoding, neighbours per hop), over training seeds.

The database stages run once through Dagster (seed 0); every variant trains on the same
row embeddings (``cluster_pretraining``), so rows differ by the model and its seed only.
Each finished row is appended, with the commit it ran on, to
``benchmarks/results/full-model-<tag>.jsonl``; a rerun skips rows already there, so a sweep
that is stopped resumes. ``--report`` writes the markdown table from that file.

    python -m benchmarks.full_model --tasks player-retention,player-games --seeds 0,1,2 --epochs 3
    python -m benchmarks.full_model --report
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

RESULTS = Path(__file__).parent / "results"

VARIANTS = {
    "mean, no time, 8/8 (before)": dict(aggr="mean", temporal=False, num_neighbors=(8, 8)),
    "sum, no time, 8/8": dict(aggr="sum", temporal=False, num_neighbors=(8, 8)),
    "mean, time, 8/8": dict(aggr="mean", temporal=True, num_neighbors=(8, 8)),
    "sum, time, 8/8": dict(aggr="sum", temporal=True, num_neighbors=(8, 8)),
    "sum, time, 16/8 (default)": dict(aggr="sum", temporal=True, num_neighbors=(16, 8)),
}


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()


def prepare(data_dir: Path):
    """Lahman's database stages through Dagster; the values the references train on."""
    from dagster import DagsterInstance

    from t2g_assets.definitions import build_definitions
    from t2g_cli.console import quiet_console
    from t2g_cli.runner import DATABASE_JOB, register, run_job
    from t2g_lib.data.format import load_dataset, parse_time_columns
    from t2g_lib.data.lahman import build_lahman

    if not (data_dir / "lahman" / "manifest.yaml").exists():
        build_lahman(data_dir)
    defs = build_definitions(data_dir=str(data_dir), storage_dir=tempfile.mkdtemp(prefix="t2g-full-"),
                             loggers={"console": quiet_console})
    inst = DagsterInstance.ephemeral()
    register(inst, "lahman", [])
    run_job(defs, DATABASE_JOB, "lahman", inst)
    load = lambda name: defs.load_asset_value(name, instance=inst, partition_key="lahman")  # noqa: E731
    db = parse_time_columns(load_dataset(data_dir / "lahman").get_db(upto_test_timestamp=False))
    return db, load("raw_tables"), load("validated_schema"), load("cluster_pretraining")


def run(tasks: list[str], seeds: list[int], variants: list[str], epochs: int, out: Path) -> None:
    from t2g_lib.full_training import train_full_models
    from t2g_lib.gbm_reference import fit_gbm_reference
    from t2g_lib.models import ModelSpec
    from t2g_lib.task_data import column_types, hidden_columns, task_from_snapshot
    from t2g_lib.task_data import read_task_labels

    data_dir = Path(os.environ.get("T2G_DATA_DIR", "data")).resolve()
    done = {(r["task"], r["variant"], r["seed"]) for r in read_rows(out)}
    code = commit()  # the code this process runs, whatever is committed while it runs
    db, raw, schema, pre = prepare(data_dir)
    labels = read_task_labels(data_dir / "lahman")
    for name in tasks:
        task = task_from_snapshot(name, raw["tasks"][name], labels[name][1])
        for seed in seeds:
            for variant in ["gbm", *variants]:
                if (name, variant, seed) in done:
                    continue
                t0 = time.perf_counter()
                if variant == "gbm":
                    ref = fit_gbm_reference(db, task, column_types(schema), hidden_columns(raw["tasks"]), seed)
                    record = ref.record
                else:
                    spec = ModelSpec(**VARIANTS[variant])
                    full = train_full_models(db, pre.embeddings, task, ["sage"], [seed], epochs=epochs, spec=spec)
                    record = full.records.iloc[0].to_dict()
                row = {"task": name, "variant": variant, "seed": seed, "epochs": epochs, "commit": code,
                       "seconds": round(time.perf_counter() - t0, 1),
                       **{k: v for k, v in record.items() if k not in ("model", "method", "seed")}}
                with out.open("a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
                print(f"{name} {variant} seed {seed}: {row}", flush=True)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def report(path: Path) -> str:
    """Mean ± std over seeds per task and variant of the task's primary metric."""
    rows = pd.DataFrame(read_rows(path))
    lines = ["| task | model | metric | test (mean ± std) | val | seconds | seeds | commits |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for (task, variant), g in rows.groupby(["task", "variant"], sort=False):
        metric = "auroc" if "auroc" in g and g["auroc"].notna().any() else "mae" if "mae" in g else "accuracy"
        lines.append(
            f"| {task} | {variant if variant == 'gbm' else 'SAGE ' + variant} | {metric} | "
            f"{g[metric].mean():.4f} ± {g[metric].std(ddof=0):.4f} | {g['val_value'].mean():.4f} | "
            f"{g['seconds'].mean():.0f} | {len(g)} | {', '.join(sorted(set(g['commit'])))} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="player-retention,player-games")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="sum, time, 16/8 (default)",
                    help="';'-separated names of VARIANTS ('all' for every one)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--tag", default="lahman")
    ap.add_argument("--report", action="store_true", help="run nothing: write the markdown table")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"full-model-{args.tag}.jsonl"
    if not args.report:
        variants = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(";")]
        run(args.tasks.split(","), [int(s) for s in args.seeds.split(",")], variants, args.epochs, out)
    md = report(out)
    (RESULTS / f"full-model-{args.tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
