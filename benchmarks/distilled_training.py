"""Benchmark: how the evaluation GNN is trained on a distilled graph (the recipe), scored.

Per seed, the shipped distillation (``KRRConfig()``, the teacher's labels, ``TeacherConfig()``)
builds the graph once; each recipe of ``RECIPES`` then trains the evaluation GNN on it:
full-batch steps or steps on mini-batches of the graph's labelled examples
(``DistilledRecipe``), the checkpoint kept by real val. Rows: real val and test, fitting seconds (validation passes
apart), steps taken, and the speed-up against the full-data run of the same model
(``full-model-<database>.jsonl``). Appended with the commit to
``benchmarks/results/distilled-training-<database>.jsonl``; a rerun skips finished rows.

    python -m benchmarks.distilled_training --database lahman --task player-retention --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmarks.full_model import RESULTS, commit, prepare, read_jsonl, read_rows as read_full_rows
from t2g_lib.data.bundled import BUNDLED
from t2g_lib.distilled_recipe import DistilledRecipe

RECIPES: dict[str, DistilledRecipe] = {name: replace(recipe, han_batch_size=None) for name, recipe in {
    "full batch, 100 steps (shipped until rung 19)": DistilledRecipe(steps=100, batch_size=None),
    "full batch, 200 steps": DistilledRecipe(steps=200, batch_size=None),
    "batches of 1024, 100 steps": DistilledRecipe(steps=100, batch_size=1024),
    "batches of 512, 100 steps": DistilledRecipe(steps=100, batch_size=512),
    "batches of 512, 140 steps (shipped)": DistilledRecipe(steps=140, batch_size=512),
    "batches of 512, 70 steps": DistilledRecipe(steps=70, batch_size=512),
    "batches of 512, 280 steps": DistilledRecipe(steps=280, batch_size=512),
    "batches of 256, 140 steps": DistilledRecipe(steps=140, batch_size=256),
    "batches of 256, 280 steps": DistilledRecipe(steps=280, batch_size=256),
    "batches of 512, up to 700 steps, patience 8": DistilledRecipe(steps=700, batch_size=512, patience=8),
    "batches of 512, up to 700 steps, patience 4": DistilledRecipe(steps=700, batch_size=512, patience=4),
}.items()}
RECIPES["batches of 512 (HAN: 256), 280 steps (shipped since rung 20)"] = DistilledRecipe()
"""Each recipe as ``train_distilled`` takes it; HAN reads the batches every model reads, except in
the shipped recipe (``DistilledRecipe()``). "batches of 512, 140 steps (shipped)" was shipped until
rung 20 and keeps its name, as rows of recipes measured before recipes counted steps ("batches of
1024, 15 epochs": 105 steps, val every 7) keep theirs in the report."""


def run(database: str, task_name: str, ratio: str, seeds: list[int], models: list[str], recipes: list[str],
        out: Path) -> None:
    from t2g_lib.feature_codec import FeatureCodec, StorageConfig
    from t2g_lib.krr import distill_features
    from t2g_lib.krr_config import KRRConfig
    from t2g_lib.metrics import primary_metric, score, task_kind
    from t2g_lib.models import ModelSpec
    from t2g_lib.sbm import budget_for, generate_sbm
    from t2g_lib.task_data import column_types, hidden_columns, read_task_labels, task_from_snapshot
    from t2g_lib.teacher import teacher_labels
    from t2g_lib.teacher_config import TeacherConfig
    from t2g_lib.train import SampledSplit, make_sampler, train_distilled

    data_dir = Path(os.environ.get("T2G_DATA_DIR", "data")).resolve()
    progress = lambda msg: print(f"  {time.strftime('%H:%M:%S')} {msg}", flush=True)  # noqa: E731
    code = commit()
    done = {(r["task"], r["ratio"], r["recipe"], r["model"], r["seed"]) for r in read_jsonl(out)}
    db, raw, schema, pre = prepare(data_dir, database)
    task = task_from_snapshot(task_name, raw["tasks"][task_name], read_task_labels(data_dir / database)[task_name][1])
    kind = task_kind(task.task_type)
    metric = primary_metric(kind)[0]
    spec = ModelSpec()
    sampler = make_sampler(db, spec.num_neighbors)
    val, test = (SampledSplit(sampler, pre.embeddings, split, task) for split in (task.val, task.test))
    for seed in seeds:
        todo = [(r, m) for r in recipes for m in models if (task_name, ratio, r, m, seed) not in done]
        if not todo:
            continue
        t0 = time.perf_counter()
        teacher = teacher_labels(db, task, column_types(schema), hidden_columns(raw["tasks"]), TeacherConfig(seed=seed),
                                 log=progress)
        cfg = StorageConfig()
        codec = FeatureCodec.fit(pre.embeddings, cfg.feature_dim, cfg.precision, seed=seed)
        structure = generate_sbm(db, pre.pseudo_labels, pre.centroids, budget_for(db, ratio, codec),
                                 task.entity_table, seed, codec)
        distilled = distill_features(structure, pre.embeddings, pre.pseudo_labels, pre.centroids, db, task,
                                     KRRConfig(seed=seed), log=progress, teacher=teacher)
        graph, distill_s = distilled.graph, time.perf_counter() - t0
        for recipe, model in todo:
            res = train_distilled(model, graph, RECIPES[recipe], seed=seed, task_type=task.task_type, spec=spec,
                                  val_split=val)
            row = {"task": task_name, "ratio": ratio, "recipe": recipe, "model": model, "seed": seed, "commit": code,
                   "metric": metric, "val": float(res.val_metric),
                   "test": float(score(kind, test.y, test.predict(res.model, "cpu"))[metric]),
                   "fit_seconds": res.seconds, "val_seconds": res.val_seconds, "steps": res.epochs,
                   "kept": distilled.history["kept"], "examples": graph.num_examples(), "distill_seconds": distill_s}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(row, flush=True)


def report(database: str, path: Path) -> str:
    rows = pd.DataFrame(read_jsonl(path))
    full = pd.DataFrame(read_full_rows(RESULTS / f"full-model-{database}.jsonl"))
    full = full[full["variant"].str.contains("default")] if "variant" in full else full
    full_s = full.groupby(["task", "model"])["train_seconds"].mean()  # fitting only, as ``fit_seconds``
    lines = ["| task | budget | recipe | model | test (mean ± std) | val | fit s | steps | speed-up vs full-data fit "
             "| seeds | commits |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for (task, ratio, recipe, model), g in rows.groupby(["task", "ratio", "recipe", "model"], sort=False):
        ref = full_s.get((task, model), float("nan"))
        lines.append(f"| {task} | {ratio} | {recipe} | {model} | {g['test'].mean():.4f} ± {g['test'].std(ddof=0):.4f} "
                     f"| {g['val'].mean():.4f} | {g['fit_seconds'].mean():.1f} | {g['steps'].mean():.0f} "
                     f"| {ref / g['fit_seconds'].mean():.0f}x | {len(g)} | {', '.join(sorted(set(g['commit'])))} |")
    return "\n".join(lines) + "\n\nFit seconds exclude the validation passes, as the full-data runs' do.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default="lahman", choices=sorted(BUNDLED))
    ap.add_argument("--task", default="player-retention")
    ap.add_argument("--ratio", default="0.01")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--models", default="sage")
    ap.add_argument("--recipes", default=";".join(RECIPES), help="names of RECIPES to run, separated by ';'")
    ap.add_argument("--report", action="store_true", help="run nothing: write the markdown table")
    args = ap.parse_args()
    out = RESULTS / f"distilled-training-{args.database}.jsonl"
    if not args.report:
        recipes = [r.strip() for r in args.recipes.split(";")]
        unknown = sorted(set(recipes) - set(RECIPES))
        if unknown:
            ap.error(f"unknown recipes {unknown}; known: {list(RECIPES)}")
        run(args.database, args.task, args.ratio, [int(s) for s in args.seeds.split(",")], args.models.split(","),
            recipes, out)
    md = report(args.database, out)
    (RESULTS / f"distilled-training-{args.database}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
