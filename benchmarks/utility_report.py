"""The issue-12 utility report: one ladder rung against its targets, on both bundled databases.

Reads the rows the ladder appended (``ladder-<database>.jsonl``, each with its commit) and the
full-data yardstick (``full-model-<database>.jsonl``) and writes, per task and budget:
T2G's test score per evaluation GNN (mean ± std over seeds, the latest row of each seed),
its retention against the best full-data model, the equal-bytes baselines (SAGE) scored at
the same commits, whether T2G beats the best of them by more than one std, and what the
distillation costs against one full-data fit. Nothing is trained here.

    python -m benchmarks.utility_report --rung 28
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from benchmarks.full_model import RESULTS, read_rows
from benchmarks.ladder import latest_rows
from t2g_lib.baselines import BASELINES
from t2g_lib.data.bundled import BUNDLED

DATABASES = ("lahman", "completejourney")
"""The two databases issue 12 reports on (``BUNDLED`` also holds the TPC-H scale dataset)."""
BUDGETS = {"0.002": ("500x", 0.80), "0.01": ("100x", 0.90), "0.05": ("20x", None)}
"""Budget -> (compression, the retention the issue asks of it; none at 20x)."""
HIGHER_BETTER = {"auroc": True, "mae": False}


def _full_fit_seconds(database: str) -> dict[tuple[str, str], float]:
    """(task, model) -> mean seconds of one full-data fit of the yardstick's default variant."""
    rows = pd.DataFrame(read_rows(RESULTS / f"full-model-{database}.jsonl"))
    rows = rows[(rows["model"] != "gbm") & rows["variant"].str.endswith("(default)")]
    return {k: float(g["train_seconds"].mean()) for k, g in rows.groupby(["task", "model"])}


def summarise(rung: str) -> list[dict]:
    """One record per (database, task, budget, model) for the rung, with its baselines."""
    out = []
    for database in DATABASES:
        rows, _ = latest_rows(database)
        fit = _full_fit_seconds(database)
        ours = rows[rows["variant"].str.startswith(f"{rung}.")]
        for (task, ratio, model), g in ours.groupby(["task", "ratio", "model"]):
            higher = HIGHER_BETTER[g["metric"].iloc[0]]
            base = rows[(rows["task"] == task) & (rows["ratio"] == ratio) & (rows["model"] == "sage")
                        & rows["variant"].isin(BASELINES) & rows["commit"].isin(set(g["commit"]))]
            baselines = {b: {"mean": float(h["test"].mean()), "std": float(h["test"].std(ddof=0)), "seeds": len(h)}
                         for b, h in base.groupby("variant")}
            rec = {"database": database, "task": task, "budget": ratio, "model": model, "metric": g["metric"].iloc[0],
                   "test_mean": float(g["test"].mean()), "test_std": float(g["test"].std(ddof=0)),
                   "retention_mean": float(g["retention"].mean()), "retention_std": float(g["retention"].std(ddof=0)),
                   "seeds": sorted(int(s) for s in g["seed"]), "commits": sorted(set(g["commit"])),
                   "distill_seconds": [float(g["distill_seconds"].min()), float(g["distill_seconds"].max())],
                   "train_seconds": float(g["train_seconds"].mean()),
                   "full_fit_seconds": fit.get((task, model)), "full_sage_fit_seconds": fit.get((task, "sage")),
                   "target": BUDGETS.get(ratio, (None, None))[1], "baselines": baselines}
            if baselines and model == "sage":
                best = (max if higher else min)(baselines, key=lambda b: baselines[b]["mean"])
                margin = (rec["test_mean"] - baselines[best]["mean"]) * (1 if higher else -1)
                rec.update(best_baseline=best, margin=margin,
                           beats_by_one_std=bool(margin > max(rec["test_std"], baselines[best]["std"])))
            out.append(rec)
    return out


def _row(r: dict) -> str:
    ratio = BUDGETS.get(r["budget"], ("?",))[0]
    met = "" if r["target"] is None else (" (met)" if r["retention_mean"] >= r["target"] else f" (short of {r['target']:.2f})")
    speed = f"{r['full_fit_seconds'] / r['train_seconds']:.0f}x" if r["full_fit_seconds"] else "-"
    pays = (f"{r['distill_seconds'][1]:.0f} s vs {r['full_sage_fit_seconds']:.0f} s" if r["full_sage_fit_seconds"]
            else f"{r['distill_seconds'][1]:.0f} s")
    base = "-"
    if "best_baseline" in r:
        b = r["baselines"][r["best_baseline"]]
        base = (f"{r['best_baseline']} {b['mean']:.4f} ± {b['std']:.4f}: "
                f"{'beats by > 1 std' if r['beats_by_one_std'] else 'does not beat by > 1 std'}")
    return (f"| {r['database']} {r['task']} ({r['metric']}) | {r['budget']} ({ratio}) | {r['model']} "
            f"| {r['test_mean']:.4f} ± {r['test_std']:.4f} | {r['retention_mean']:.3f} ± {r['retention_std']:.3f}{met} "
            f"| {len(r['seeds'])} | {base} | {pays} | {speed} | {', '.join(r['commits'])} |")


def render(rung: str, records: list[dict]) -> str:
    order = {b: i for i, b in enumerate(BUDGETS)}
    records = sorted(records, key=lambda r: (r["database"], r["task"], order.get(r["budget"], 9),
                                             ["sage", "hgt", "han"].index(r["model"])))
    lines = [f"# Utility report: ladder rung {rung} against issue 12's targets", "",
             "Test mean ± std over seeds (the latest row of each); retention against the best full-data model "
             "of the task; the target is 0.90 at 100x and 0.80 at 500x. Baselines: the equal-bytes baselines "
             "trained by SAGE at the same commits, the best of them shown. Distill: the slowest seed's "
             "distillation against one full-data SAGE fit. Speed-up: the same model's full-data fit over its "
             "fit on the distilled graph (the issue asks 50x).", "",
             "| task | budget | model | test | retention | seeds | best equal-bytes baseline (SAGE) "
             "| distill (slowest seed) vs full fit | training speed-up | commits |",
             "|---|---|---|---:|---:|---:|---|---|---:|---|"]
    lines += [_row(r) for r in records]
    missing = [f"{db} {task} @ {b}" for db in DATABASES for task in BUNDLED[db].tasks for b in BUDGETS
               if not any((r["database"], r["task"], r["budget"]) == (db, task, b) for r in records)]
    if missing:
        lines += ["", f"Not yet measured at rung {rung}: {', '.join(missing)}."]
    short = [r for r in records if len(r["seeds"]) < 5]
    if short:
        lines += ["", "Fewer than 5 seeds: " + ", ".join(
            f"{r['database']} {r['task']} @ {r['budget']} {r['model']} ({len(r['seeds'])})" for r in short) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rung", default="28", help="the ladder rung number to report")
    args = ap.parse_args()
    records = summarise(args.rung)
    (RESULTS / "utility-report.json").write_text(json.dumps({"rung": args.rung, "rows": records}, indent=1))
    md = render(args.rung, records)
    (RESULTS / "utility-report.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
