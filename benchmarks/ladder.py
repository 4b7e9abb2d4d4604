"""Benchmark: the utility ladder, each change to how T2G builds its graph as a measured row.

Per task, budget and seed: for each rung of ``LADDER`` (a storage setting, ``StorageConfig``,
and KRR knobs, ``KRRConfig``; every rung keeps the ones above it), one SBM structure at the
byte budget, one KRR distillation, then the evaluation GNN (SAGE, ``ModelSpec()``) trained
on the distilled graph and scored on the real test split (``--models`` adds HGT and HAN). With ``--baselines``, the
equal-bytes baselines are scored too (by ``--baseline-models``, SAGE unless told), in the bytes of the last
rung's graph. Retention is
against the best full-data mean of ``full-model-<database>.jsonl`` (the yardstick benchmark).
Each row is appended with its commit to ``benchmarks/results/ladder-<database>.jsonl``; a
rerun skips finished rows; ``--report`` writes the markdown table.

    python -m benchmarks.ladder --database lahman --tasks player-retention --seeds 0,1,2,3,4 --baselines
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
from t2g_lib.krr_config import KRRConfig

PLAIN = {"feature_dim": None, "precision": "float32"}
BEFORE_RUNG_9 = {"select": "krr", "coreset_fallback": "none", "pseudo_tables": 0, "coreset_feature_dim": 0,
                 "labels": "hard", "concede": None, "gnn_steps": 100,
                 "gnn_batch_size": None, "gnn_patience": None,
                 "gnn_han_batch_size": None, "coreset_label_times": [0],
                 "coreset_labels": ["teacher"], "gnn_first": 0}
"""``KRRConfig``'s defaults before rung 9 became the shipped method (every table in each step's
pseudo-label term until rung 11, the coreset stored as the KRR graph until rung 13, hard train
labels until rung 15, every KRR step run until rung 18, GNNs trained full-batch on distilled
graphs until rung 19, with no early stopping on val, whole entity histories until rung 24, histories judged under the teacher's labels alone until rung 27, KRR's start judged until rung 28): every rung sets its knobs on these. A rung's graph is evaluated with
the recipe its judge trains with (``KRRConfig.judge_recipe``), as the product does."""
RUNG_13 = {"select": "gnn", "coreset_fallback": "histories", "pseudo_tables": 4, "coreset_feature_dim": 8}
RUNG_20 = {**RUNG_13, "concede": 0.05, "gnn_steps": 280, "gnn_batch_size": 512, "gnn_han_batch_size": 256}
RUNG_27 = {**RUNG_20, "labels": "teacher", "coreset_label_times": [0, 1], "coreset_labels": ["teacher", "hard"]}
LADDER: dict[str, tuple[dict, ...]] = {
    "0. before: 64-d float32 rows, mean, no time": (PLAIN, {"aggr": "mean", "temporal": False}),
    "1. + sum aggregation, ages (block medians)": (PLAIN, {"age_init": "block_median"}),
    "2. + rows as 16 float16 components (more rows, same bytes)": ({}, {"age_init": "block_median"}),
    "3. + children start at real examples' ages (shipped until rung 9)": ({}, {}),
    "4. + no pseudo-label term": ({}, {"beta": 0.0}),
    "5. start from the herding coreset, not the centroids": ({}, {"start": "herding"}),
    "6. herding start, checkpoint kept by the GNN's val": ({}, {"start": "herding", "select": "gnn"}),
    "7. centroid start, checkpoint kept by the GNN's val": ({}, {"select": "gnn"}),
    "8. 7 + the herding coreset kept when the GNN's val prefers it": ({}, {"select": "gnn", "coreset_fallback": "subgraphs"}),
    "9. 7 + the herding histories kept when the GNN's val prefers them (shipped until rung 11)": ({}, {"select": "gnn", "coreset_fallback": "histories"}),
    "10. 9 with rows as 8 float16 components": ({"feature_dim": 8}, {"select": "gnn", "coreset_fallback": "histories"}),
    "11. 9 with the pseudo-label term on 4 tables a step (shipped until rung 13)": ({}, {"select": "gnn", "coreset_fallback": "histories",
                                                               "pseudo_tables": 4}),
    "12. 11 with rows as 8 float16 components": ({"feature_dim": 8}, {"select": "gnn", "coreset_fallback": "histories",
                                                               "pseudo_tables": 4}),
    "13. 11 with the herding histories stored as 8 components (shipped until rung 15)": ({}, RUNG_13),
    "14. 11 with the herding histories stored as 4 components": ({}, {"select": "gnn", "coreset_fallback": "histories",
                                                                      "pseudo_tables": 4, "coreset_feature_dim": 4}),
    "15. 13 with the teacher's out-of-fold soft labels (2 folds; shipped until rung 16)": ({}, {**RUNG_13, "labels": "teacher"},
                                                                                         {"folds": 2}),
    "16. 15 with the teacher cross-fitted on 5 folds, not 2 (shipped until rung 18)": ({}, {**RUNG_13, "labels": "teacher"},
                                                                                   {"folds": 5}),
    "17. 16 with soft labels half teacher, half hard label": ({}, {**RUNG_13, "labels": "teacher"},
                                                             {"folds": 5, "weight": 0.5}),
    "18. 16 with KRR stopped once the GNN judges it 5% behind the coreset (shipped until rung 19)": (
        {}, {**RUNG_13, "labels": "teacher", "concede": 0.05}, {"folds": 5}),
    "19. 18 with every GNN (judge, evaluation) trained on batches of 512 examples, 140 steps (shipped until rung 20)": (
        {}, {**RUNG_13, "labels": "teacher", "concede": 0.05, "gnn_steps": 140, "gnn_batch_size": 512}, {"folds": 5}),
    "20. 19 with every GNN trained for 280 steps, not 140, HAN on batches of 256 (shipped)": (
        {}, {**RUNG_20, "labels": "teacher"}, {"folds": 5}),
    "21. 20 with at most 8 label times per entity history (more entities)": (
        {}, {**RUNG_20, "labels": "teacher", "coreset_label_times": [8]}, {"folds": 5}),
    "22. 20 with at most 3 label times per entity history (more entities)": (
        {}, {**RUNG_20, "labels": "teacher", "coreset_label_times": [3]}, {"folds": 5}),
    "23. 20 with one label time per entity history, its latest (more entities)": (
        {}, {**RUNG_20, "labels": "teacher", "coreset_label_times": [1]}, {"folds": 5}),
    "24. 20 with histories of one label time judged beside whole ones where they hold 1.25x the entities": (
        {}, {**RUNG_20, "labels": "teacher", "coreset_label_times": [0, 1]}, {"folds": 5}),
    "25. 24 with hard labels, not the teacher's": ({}, {**RUNG_20, "labels": "hard", "coreset_label_times": [0, 1]}),
    "26. 24 with the histories' rows at the KRR graph's width (16 components), not 8": (
        {}, {**RUNG_20, "labels": "teacher", "coreset_label_times": [0, 1], "coreset_feature_dim": 0}, {"folds": 5}),
    "27. 24 with the histories judged under the teacher's labels and under their own": ({}, RUNG_27, {"folds": 5}),
    "28. 27 with KRR judged first at step 50, not at its untrained start": (
        {}, {**RUNG_27, "gnn_first": 50}, {"folds": 5}),
}
"""Each rung: storage knobs (``StorageConfig``), KRR knobs (``KRRConfig``) and, optionally,
the teacher's (``TeacherConfig``)."""


def rung_config(rung: str, seed: int) -> KRRConfig:
    """The ``KRRConfig`` of ``rung``: its knobs on ``BEFORE_RUNG_9``."""
    return KRRConfig(seed=seed, **{**BEFORE_RUNG_9, **LADDER[rung][1]})


def run(database: str, tasks: list[str], ratio: str, seeds: list[int], rungs: list[str], baselines: bool,
        models: list[str], out: Path, rerun: bool = False, baseline_models: list[str] | None = None) -> None:
    from t2g_lib.baselines import BASELINES, build_baselines
    from t2g_lib.evaluate import evaluate_methods
    from t2g_lib.feature_codec import FeatureCodec, StorageConfig
    from t2g_lib.krr import distill_features
    from t2g_lib.metrics import primary_metric, task_kind
    from t2g_lib.sbm import budget_for, generate_sbm
    from t2g_lib.task_data import column_types, hidden_columns, read_task_labels, task_from_snapshot
    from t2g_lib.teacher import teacher_labels
    from t2g_lib.teacher_config import TeacherConfig

    data_dir = Path(os.environ.get("T2G_DATA_DIR", "data")).resolve()
    progress = lambda msg: print(f"  {time.strftime('%H:%M:%S')} {msg}", flush=True)  # noqa: E731
    code = commit()
    done = {(r["task"], r["ratio"], r["variant"], r["seed"], r.get("model", "sage")) for r in read_jsonl(out)
            if not rerun or r["commit"] == code}
    baseline_models = baseline_models or models
    finished = lambda *key, by=models: all((*key, m) in done for m in by)  # noqa: E731
    db, raw, schema, pre = prepare(data_dir, database)
    labels = read_task_labels(data_dir / database)
    for name in tasks:
        task = task_from_snapshot(name, raw["tasks"][name], labels[name][1])
        metric = primary_metric(task_kind(task.task_type))[0]
        for seed in seeds:
            teachers = {}  # fitted once per task, seed and teacher knobs, for the rungs that read them

            def structure(rung: str):
                """The SBM structure at the byte budget, rows stored as ``rung`` says."""
                cfg = StorageConfig(**LADDER[rung][0])
                codec = FeatureCodec.fit(pre.embeddings, cfg.feature_dim, cfg.precision, seed=seed)
                return generate_sbm(db, pre.pseudo_labels, pre.centroids, budget_for(db, ratio, codec),
                                    task.entity_table, seed, codec)

            graphs, info, judged, recipes = {}, {}, [], {}
            for rung in rungs:
                if finished(name, ratio, rung, seed):
                    continue
                knobs, teaching = LADDER[rung][1], LADDER[rung][2] if len(LADDER[rung]) > 2 else {}
                t0 = time.perf_counter()
                teacher = None
                if knobs.get("labels") == "teacher":
                    key = tuple(sorted(teaching.items()))
                    if key not in teachers:
                        teachers[key] = teacher_labels(db, task, column_types(schema), hidden_columns(raw["tasks"]),
                                                       TeacherConfig(**teaching, seed=seed), log=progress)
                    teacher = teachers[key]
                config = rung_config(rung, seed)
                distilled = distill_features(structure(rung), pre.embeddings, pre.pseudo_labels, pre.centroids,
                                             db, task, config, log=progress, teacher=teacher)
                recipes[rung] = config.judge_recipe()
                graphs[rung], hist = distilled.graph, distilled.history
                judged += [distilled.judged] if distilled.judged is not None else []
                info[rung] = {"krr_val": hist["best_score"], "krr_start": hist["start_score"],
                              "krr_gnn_val": hist.get("gnn_best_score"),
                              "distill_seconds": time.perf_counter() - t0, "kept": hist["kept"],
                              "label_times": hist.get("coreset_label_times"), "labels": hist.get("coreset_labels")}
                print(f"{name} {ratio} seed {seed} {rung}: KRR val {hist['best_score']:.4f} "
                      f"in {info[rung]['distill_seconds']:.0f}s", flush=True)
            todo = [b for b in BASELINES if not finished(name, ratio, b, seed, by=baseline_models)] if baselines and rungs else []
            if todo:
                rung = rungs[-1]
                base = structure(rung)
                nbytes = graphs[rung].nbytes() if rung in graphs else base.nbytes()
                built = build_baselines(db, pre, base, task, seed, budget_bytes=nbytes, names=todo)
                graphs.update(built.graphs)
                info.update({b: {"distill_seconds": s} for b, s in built.seconds.items()})
                recipes.update({b: rung_config(rung, seed).judge_recipe() for b in todo})
            if not graphs:
                continue
            # the judge's model of a kept graph is the model evaluation would train on it: reused
            by = {m: tuple(baseline_models if m in todo else models) for m in graphs}
            tables = [evaluate_methods({m: graphs[m] for m in graphs if (recipes[m], by[m]) == group}, list(group[1]), db,
                                       pre.embeddings, task, seeds=[seed], recipe=group[0], trained=judged)
                      for group in dict.fromkeys((recipes[m], by[m]) for m in graphs)]
            trivial = tables[0].attrs["trivial_score"]
            for r in pd.concat(tables).itertuples():
                if (name, ratio, r.method, seed, r.model) in done:
                    continue
                row = {"task": name, "ratio": ratio, "variant": r.method, "model": r.model, "seed": seed, "commit": code,
                       "metric": metric, "test": r.value, "val": r.val_value, "trivial": trivial,
                       "krr_val": info[r.method].get("krr_val"), "krr_start": info[r.method].get("krr_start"),
                       "krr_gnn_val": info[r.method].get("krr_gnn_val"),
                       "distill_seconds": info[r.method]["distill_seconds"], "train_seconds": r.train_seconds,
                       "bytes": int(r.storage_bytes), "kept": info[r.method].get("kept"),
                       "label_times": info[r.method].get("label_times"), "labels": info[r.method].get("labels"),
                       "target_nodes": int(graphs[r.method].num_nodes()[task.entity_table]),
                       "examples": graphs[r.method].num_examples()}
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


def latest_rows(database: str, path: Path | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """The ladder's rows, one per (task, budget, method, model, seed), with their retention.

    A seed measured again (``--rerun``) counts once: its latest row. Rows from before models were
    recorded were scored by SAGE. Also returns the best full-data score per task the retention uses.
    """
    rows = pd.DataFrame(read_jsonl(path or RESULTS / f"ladder-{database}.jsonl"))
    rows["model"] = rows.get("model", pd.Series(index=rows.index, dtype=object)).fillna("sage")
    rows = rows.drop_duplicates(["task", "ratio", "variant", "model", "seed"], keep="last")
    full = best_full(database)
    rows["retention"] = [(r.test - r.trivial) / (full[r.task] - r.trivial) for r in rows.itertuples()]
    return rows, full


def report(database: str, path: Path) -> str:
    rows, full = latest_rows(database, path)
    lines = ["| task | budget | rung / method | model | metric | test (mean ± std) | retention (mean ± std) | KRR surrogate val "
             "| GNN val | labelled examples | bytes | distill s | seeds | commits |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    rows["budget"] = rows["ratio"].astype(float)
    # labelled examples: one per target node, unless the row records earlier labels too
    rows["examples"] = rows["examples"].fillna(rows["target_nodes"]) if "examples" in rows else rows["target_nodes"]
    rows = rows.sort_values(["task", "budget"], kind="stable")  # rows keep their first-run order within a budget
    for (task, ratio, variant, model), g in rows.groupby(["task", "ratio", "variant", "model"], sort=False):
        lines.append(
            f"| {task} | {ratio} | {variant} | {model} | {g['metric'].iloc[0]} | {g['test'].mean():.4f} ± {g['test'].std(ddof=0):.4f} "
            f"| {g['retention'].mean():.3f} ± {g['retention'].std(ddof=0):.3f} | {g['krr_val'].mean():.4f} "
            f"| {g['val'].mean():.4f} | {g['examples'].mean():.0f} | {g['bytes'].mean():,.0f} "
            f"| {g['distill_seconds'].mean():.0f} | {len(g)} | {', '.join(sorted(set(g['commit'])))} |"
        )
    return "\n".join(lines) + f"\n\nRetention against the best full-data mean per task: {full}.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default="lahman", choices=sorted(BUNDLED))
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the database's tasks)")
    ap.add_argument("--ratio", default="0.01")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rungs", default="all", help="';'-separated rung numbers of LADDER (e.g. '0;3'), or 'all'")
    ap.add_argument("--baselines", action="store_true", help="also the equal-bytes baselines, at the last rung's bytes")
    ap.add_argument("--models", default="sage", help="comma-separated evaluation GNNs (sage, hgt, han)")
    ap.add_argument("--baseline-models", default="sage", help="the evaluation GNNs of the baselines")
    ap.add_argument("--rerun", action="store_true",
                    help="run again the rows recorded at other commits (the report keeps each seed's latest row)")
    ap.add_argument("--report", action="store_true", help="run nothing: write the markdown table")
    args = ap.parse_args()
    out = RESULTS / f"ladder-{args.database}.jsonl"
    if not args.report:
        picked = list(LADDER) if args.rungs == "all" else [
            next(r for r in LADDER if r.startswith(f"{n.strip()}.")) for n in args.rungs.split(";")]
        tasks = args.tasks.split(",") if args.tasks else list(BUNDLED[args.database].tasks)
        run(args.database, tasks, args.ratio, [int(s) for s in args.seeds.split(",")], picked, args.baselines,
            args.models.split(","), out, args.rerun, args.baseline_models.split(","))
    md = report(args.database, out)
    (RESULTS / f"ladder-{args.database}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
