"""The ``t2g`` command: prepare data, import a database, distill, run the demo and benchmarks."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

app = typer.Typer(add_completion=False, help="Distill relational databases into small graphs (T2G).")


def _clear_errors(command: Callable) -> Callable:
    """Bad input (``DatasetError``) ends a command with one message naming table, column and rows."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from t2g_lib.data.errors import DatasetError

        try:
            return command(*args, **kwargs)
        except DatasetError as exc:
            _fail(str(exc))

    return run


def data_dir() -> Path:
    return Path(os.environ.get("T2G_DATA_DIR", "data"))


@app.command("prepare")
@_clear_errors
def prepare(
    name: str = typer.Argument(..., help="A bundled database: lahman (baseball), completejourney (grocery) or tpch"),
    out: Path = typer.Option(None, help="Data folder (default: $T2G_DATA_DIR or ./data)"),
    scale: Optional[float] = typer.Option(None, help="tpch only: the scale factor; writes dataset tpch-sf<SCALE>"),
) -> None:
    """Convert a database shipped inside an installed package into a RelBench-format dataset."""
    from t2g_lib.data.bundled import build_bundled
    from t2g_lib.data.tpch import build_tpch

    if scale is not None and name != "tpch":
        _fail(f"--scale applies to tpch only, not {name!r}")
    path = (build_bundled(name, out or data_dir()) if scale is None
            else build_tpch(out or data_dir(), name=f"tpch-sf{scale:g}", scale=scale))
    typer.echo(f"{name} dataset written to {path}")


@app.command("import")
@_clear_errors
def import_cmd(
    source: Path = typer.Argument(..., help="A DuckDB or SQLite file"),
    name: str = typer.Option(..., "--name", help="Name of the new dataset"),
    fkey: list[str] = typer.Option([], "--fkey", help="child.col=parent, for undeclared foreign keys"),
    time_col: list[str] = typer.Option(
        [], "--time-col", help="TABLE.COL: the table's time column (TABLE.- for none); default: its first date column"
    ),
    val_timestamp: Optional[str] = typer.Option(None, help="Start of validation (default: 70% quantile of all times)"),
    test_timestamp: Optional[str] = typer.Option(None, help="Start of test (default: 85% quantile of all times)"),
    out: Path = typer.Option(None, help="Data folder (default: $T2G_DATA_DIR or ./data)"),
) -> None:
    """Import your own database (primary/foreign keys from its declared constraints).

    Date columns are those declared DATE/TIMESTAMP and text columns holding ISO dates
    (SQLite stores dates as text).
    """
    from t2g_lib.data.importer import import_database, parse_time_col_specs

    path = import_database(
        source, name, out or data_dir(), fkeys=list(fkey), time_cols=parse_time_col_specs(time_col),
        val_timestamp=val_timestamp, test_timestamp=test_timestamp,
    )
    typer.echo(f"imported {source} as {path}")


@app.command("add-task")
@_clear_errors
def add_task(
    dataset: str = typer.Argument(..., help="Dataset name (folder in the data dir) or path"),
    name: str = typer.Argument(..., help="Task name"),
    sql: Path = typer.Option(..., help="File with the label SQL (sees timestamps(timestamp) and every table)"),
    task_type: str = typer.Option(..., help="binary_classification, multiclass_classification or regression"),
    entity_table: str = typer.Option(...),
    entity_col: str = typer.Option(...),
    target_col: str = typer.Option(...),
    timedelta: str = typer.Option(..., help="Label window, e.g. '365 days'"),
) -> None:
    """Add a forecast task whose labels a SQL query computes (and can recompute)."""
    from t2g_lib.data.importer import add_task_from_sql

    path = Path(dataset) if Path(dataset).exists() else data_dir() / dataset
    out = add_task_from_sql(path, name, sql, task_type, entity_table, entity_col, target_col, timedelta)
    typer.echo(f"task written to {out}")


def _known_database(dataset: str) -> None:
    """Fail before any Dagster run when ``dataset`` is not a dataset folder, listing the known ones."""
    from t2g_lib.data.registry import discover_datasets

    if (data_dir() / dataset / "manifest.yaml").is_file():
        return
    known = ", ".join(sorted(discover_datasets(data_dir()))) or "none"
    _fail(f"unknown database {dataset!r} in {data_dir().resolve()} (known: {known}); "
          "create one with `t2g import` or `t2g prepare lahman`")


def _known_task(dataset: str, task: str) -> None:
    """Fail before any Dagster run when ``dataset`` has no task ``task``, listing its tasks."""
    from t2g_lib.data.registry import list_tasks, missing_task

    tasks = list_tasks(data_dir() / dataset)
    if task not in tasks:
        _fail(f"{missing_task(dataset, task, tasks)}; add one with `t2g add-task`")


def _quiet_dagster_notices() -> None:
    """Dagster's beta/preview notices are nothing a user can act on: off the terminal."""
    import warnings

    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def _distill(
    dataset: str,
    task: str,
    budget: str,
    seed: int,
    storage: Optional[Path],
    evaluate: bool,
    models: str = "sage,hgt,han",
    epochs: int = 5,
    verbose: bool = False,
    floor: float | None = 0.5,
    config: Optional[Path] = None,
    compare: bool = False,
) -> Chain:
    """Run the database job, then the task job, for one database x task x budget.

    Exits 1 on a failed stage or a failed database check (naming table, column and rows);
    a refusal by ``evaluation_scores``' quality gate returns an unpublished chain.
    """
    _known_database(dataset)
    _known_task(dataset, task)
    _quiet_dagster_notices()  # before the definitions are imported: they raise the notices

    from dagster import DagsterInvalidConfigError

    from t2g_assets.definitions import build_definitions
    from t2g_assets.partitions import task_budget_key, task_partition_key
    from t2g_cli import console
    from t2g_cli.runner import (
        DATABASE_JOB, TASK_JOB, chain_stages, instance, job_stages, register, run_job, stale_stages,
    )

    settings = {
        "data_dir": str(data_dir().resolve()),
        "storage_dir": str(storage.resolve()) if storage else None,
        "seed": seed,
        "eval_models": [m.strip() for m in models.split(",") if m.strip()],
        "eval_epochs": epochs,
        "utility_floor": floor,
    }
    defs = build_definitions(**settings, loggers=None if verbose else {"console": console.quiet_console})
    # T2G_EXECUTOR=dask: the runs go through the definitions' Dask executor, whose workers
    # rebuild the same definitions; otherwise every stage runs in this process.
    rebuild = json.dumps({**settings, "quiet": not verbose}) if os.environ.get("T2G_EXECUTOR") == "dask" else None
    knobs = _read_knobs(config, defs) if config else {}
    inst = instance()
    register(inst, dataset, [task_budget_key(task, budget)])
    key = task_partition_key(dataset, task, budget)
    task_stages = chain_stages(defs, TASK_JOB, evaluate, compare)
    database_stages = stale_stages(defs, inst, DATABASE_JOB, dataset, knobs)
    reused = [s for s in job_stages(defs, DATABASE_JOB) if s not in database_stages]
    if reused:
        typer.echo(f"up to date for {dataset!r} (same source, code and settings), reused: {', '.join(reused)}")
    console.current = console.StageProgress(len(database_stages) + len(task_stages))
    try:
        runs = [run_job(defs, DATABASE_JOB, dataset, inst, database_stages, knobs, rebuild)] if database_stages else []
        if all(r.success for r in runs):
            runs.append(run_job(defs, TASK_JOB, key, inst, task_stages, knobs, rebuild))
    except DagsterInvalidConfigError as exc:  # a knob of the wrong name or type
        _fail(f"{config}: {exc}")
    finally:
        console.current.close()
        console.current = None
    typer.echo("stages: " + ", ".join(f"{s.stage} {s.seconds:.1f}s" for r in runs for s in r.stages))
    failed = next((r.failed for r in runs if r.failed is not None), None)
    if failed is not None:
        _report(failed)
    return Chain(defs, inst, key, published=failed is None)


def _read_knobs(path: Path, defs) -> dict[str, dict]:
    """``--config``'s YAML, ``{stage: {knob: value}}``, checked for stages that have knobs
    (Dagster checks the knobs' names and types when the run starts)."""
    import yaml

    from t2g_cli.runner import stage_knobs

    try:
        knobs = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read --config {path}: {exc}")
    known = stage_knobs(defs)
    if not isinstance(knobs, dict) or not all(isinstance(v, dict) for v in knobs.values()):
        _fail(f"{path}: expected a mapping of stage to knobs, e.g. 'distilled_features: {{steps: 100}}'")
    for stage in knobs:
        if stage not in known:
            _fail(f"{path}: stage {stage!r} has no knobs; stages with knobs: "
                  + "; ".join(f"{s} ({', '.join(k)})" for s, k in known.items()))
    return knobs


def _report(failed) -> None:
    """Name a failed stage and its checks; exit 1 unless it is a quality gate's refusal."""
    from t2g_cli.runner import describe_failure

    gate = failed.stage == "evaluation_scores" and any(c.blocking for c in failed.failed_checks)
    for line in describe_failure(failed):
        typer.secho(line, fg="yellow" if gate else "red", err=True)
    if not gate:
        _fail(f"stage {failed.stage} stopped the run; earlier materializations stay, and the run's "
              "full log is in `make ui`.")
    typer.secho(
        "quality gate refused: the distilled database was evaluated but not published "
        "(the checks and scores are in `make ui`).",
        fg="yellow",
    )


@dataclass
class Chain:
    """The definitions and instance a chain ran in, its task partition, and its outcome."""

    defs: Any
    instance: Any
    partition: Any
    published: bool

    def load(self, asset: str) -> Any:
        """An asset's stored value for this partition, read through its IO manager."""
        return self.defs.load_asset_value(asset, instance=self.instance, partition_key=self.partition)


@app.command()
@_clear_errors
def distill(
    dataset: str = typer.Argument(..., help="Dataset name (a folder in the data dir)"),
    task: str = typer.Argument(..., help="Task name"),
    ratio: str = typer.Option("0.01", help="Budget: ratio of rows per table, or n<count>"),
    seed: int = typer.Option(0, help="Seed of every stochastic stage"),
    out: Optional[Path] = typer.Option(None, help="Storage folder (default: $T2G_STORAGE_DIR or ./storage)"),
    evaluate: bool = typer.Option(False, help="Also train and score GNNs (evaluation_scores gates publication)"),
    compare: bool = typer.Option(
        False, help="Also build the ablation and the baselines at the same budget and score them (comparison_scores)"
    ),
    models: str = typer.Option("sage,hgt,han", help="GNNs the evaluation trains, comma-separated"),
    floor: float = typer.Option(0.5, help="Utility retention T2G must keep to be published (with --evaluate)"),
    verbose: bool = typer.Option(False, "--verbose", help="Show Dagster's DEBUG events instead of a progress bar"),
    config: Optional[Path] = typer.Option(
        None, "--config", help="YAML of stage knobs, {stage: {knob: value}}, e.g. 'distilled_features: {steps: 100}'"
    ),
) -> None:
    """Materialize the whole chain for one database x task x budget through Dagster.

    Exit codes: 0 published, 1 a stage or a data check failed, 3 a quality gate refused.
    """
    chain = _distill(dataset, task, ratio, seed, out, evaluate, models, verbose=verbose, floor=floor, config=config,
                     compare=compare)
    if compare:
        _print_scores(chain, "comparison_scores")
    if not chain.published:
        raise typer.Exit(3)  # evaluated, refused by a quality gate
    _print_published(chain)


def _print_published(chain: Chain) -> None:
    published = chain.load("distilled_database")
    out = published.folder
    sizes = published.stored_metadata(out)
    typer.echo(f"distilled database: {out}")
    typer.echo(f"  RelBench folder {out / 'relbench'}, DuckDB {out / 'distilled.duckdb'}, PyG {out / 'graph.pt'}")
    distilled = chain.load("distilled_features")  # which graph the GNN judge kept, and its labels
    # Two units, named so they do not read as a contradiction: the budget (and the score
    # table's ratio) counts the graph's payload; the files are compressed, as the source's are.
    typer.echo(f"  payload {distilled.graph.nbytes():,} bytes (features, edges, ages, labels: the budget's unit, "
               f"the score table's compression)")
    typer.echo(f"  on disk {sizes['distilled_bytes']:,} bytes of files vs {sizes.get('source_bytes', 0):,} bytes of "
               f"source files: {sizes.get('compression_ratio', float('nan')):.1f}x smaller (both compressed)")
    typer.echo(f"  graph kept: {distilled.history.get('kept', 'krr')}, "
               f"{distilled.graph.num_examples():,} labelled examples")


def _print_scores(chain: Chain, asset: str) -> None:
    """A score table as markdown (a failed stage has exited before: the asset is there)."""
    from t2g_lib.evaluate import scores_markdown

    typer.echo(scores_markdown(chain.load(asset)))


@app.command()
@_clear_errors
def demo(
    task: str = typer.Option("player-retention", help="Lahman task to distill"),
    ratio: str = typer.Option("0.01", help="Budget"),
    evaluate: bool = typer.Option(True, help="Train and score GNNs on the distilled graph"),
    compare: bool = typer.Option(
        False, help="Also build and score the ablation and the baselines (about 3 more minutes)"
    ),
    models: str = typer.Option("sage", help="GNNs the evaluation trains (sage,hgt,han for all)"),
    epochs: int = typer.Option(2, help="Epochs of full-data training (the benchmark uses 5)"),
    verbose: bool = typer.Option(False, "--verbose", help="Show Dagster's DEBUG events instead of a progress bar"),
) -> None:
    """Prepare Lahman (once) and run the whole chain on it: the main job, end to end.

    Exit codes as ``distill``: 0 published, 1 a stage or a data check failed, 3 a quality
    gate refused to publish (the score table is printed first).
    """
    from t2g_lib.data.bundled import ensure_bundled

    if not (data_dir() / "lahman" / "manifest.yaml").exists():
        typer.echo("preparing the Lahman database ...")
    ensure_bundled("lahman", data_dir())
    chain = _distill("lahman", task, ratio, 0, None, evaluate, models, epochs, verbose=verbose, compare=compare)
    if chain.published:
        _print_published(chain)
    if evaluate or compare:
        _print_scores(chain, "comparison_scores" if compare else "evaluation_scores")
    if not chain.published:
        raise typer.Exit(3)  # evaluated, refused by a quality gate


if __name__ == "__main__":
    app()
