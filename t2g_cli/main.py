"""The ``t2g`` command: prepare data, import a database, distill, run the demo and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help="Distill relational databases into small graphs (T2G).")


def data_dir() -> Path:
    return Path(os.environ.get("T2G_DATA_DIR", "data"))


@app.command("prepare-lahman")
def prepare_lahman(out: Path = typer.Option(None, help="Data folder (default: $T2G_DATA_DIR or ./data)")) -> None:
    """Convert the bundled Lahman baseball database into a RelBench-format dataset."""
    from t2g_lib.data.lahman import build_lahman

    path = build_lahman(out or data_dir())
    typer.echo(f"Lahman dataset written to {path}")


@app.command("import")
def import_cmd(
    source: Path = typer.Argument(..., help="A DuckDB or SQLite file"),
    name: str = typer.Option(..., "--name", help="Name of the new dataset"),
    fkey: list[str] = typer.Option([], "--fkey", help="child.col=parent, for undeclared foreign keys"),
    out: Path = typer.Option(None, help="Data folder (default: $T2G_DATA_DIR or ./data)"),
) -> None:
    """Import your own database (primary/foreign keys from its declared constraints)."""
    from t2g_lib.data.importer import import_database

    path = import_database(source, name, out or data_dir(), fkeys=list(fkey))
    typer.echo(f"imported {source} as {path}")


@app.command("add-task")
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


def _distill(
    dataset: str,
    task: str,
    budget: str,
    seed: int,
    storage: Optional[Path],
    evaluate: bool,
    models: str = "sage,hgt,han",
    epochs: int = 5,
) -> list:
    """Run the chain; returns the stage runs. Exits 1 on a failure other than a quality gate."""
    from tqdm import tqdm

    from t2g_assets.definitions import build_definitions
    from t2g_assets.partitions import task_budget_key, task_partition_key
    from t2g_cli.runner import DATABASE_STAGES, TASK_STAGES, instance, materialize_stages, register

    defs = build_definitions(
        data_dir=str(data_dir().resolve()),
        storage_dir=str(storage.resolve()) if storage else None,
        seed=seed,
        eval_models=[m.strip() for m in models.split(",") if m.strip()],
        eval_epochs=epochs,
    )
    inst = instance()
    register(inst, dataset, [task_budget_key(task, budget)])
    stages = DATABASE_STAGES + (TASK_STAGES if evaluate else [s for s in TASK_STAGES if s != "evaluation_scores"])
    bar = tqdm(total=len(stages), desc="t2g", unit="stage")

    def on_stage(run) -> None:
        bar.set_postfix_str(f"{run.stage} {'ok' if run.success else 'FAILED'} {run.seconds:.1f}s")
        bar.update(1)

    runs = materialize_stages(defs, DATABASE_STAGES, dataset, inst, on_stage)
    if all(r.success for r in runs):
        task_stages = [s for s in stages if s in TASK_STAGES]
        runs += materialize_stages(defs, task_stages, task_partition_key(dataset, task, budget), inst, on_stage)
    bar.close()
    failed = [r for r in runs if not r.success]
    if failed and failed[0].stage == "evaluation_scores" and failed[0].failed_checks:
        typer.secho(
            f"quality gate {', '.join(failed[0].failed_checks)} failed: the distilled database was evaluated "
            "but not published (see the scores below and the check in `make ui`).",
            fg="yellow",
        )
    elif failed:
        typer.secho(
            f"stage {failed[0].stage} failed; earlier stages stay materialized. See `make ui` for the run's logs.",
            fg="red",
        )
        raise typer.Exit(1)
    return runs


@app.command()
def distill(
    dataset: str = typer.Argument(..., help="Dataset name (a folder in the data dir)"),
    task: str = typer.Argument(..., help="Task name"),
    ratio: str = typer.Option("0.01", help="Budget: ratio of rows per table, or n<count>"),
    seed: int = typer.Option(0, help="Seed of every stochastic stage"),
    out: Optional[Path] = typer.Option(None, help="Storage folder (default: $T2G_STORAGE_DIR or ./storage)"),
    evaluate: bool = typer.Option(False, help="Also train and score GNNs (evaluation_scores gates publication)"),
    models: str = typer.Option("sage,hgt,han", help="GNNs the evaluation trains, comma-separated"),
) -> None:
    """Materialize the whole chain for one database x task x budget through Dagster."""
    runs = _distill(dataset, task, ratio, seed, out, evaluate, models)
    if all(r.success for r in runs):
        _print_published(dataset, task, ratio, out)
    else:
        raise typer.Exit(3)  # evaluated, refused by a quality gate


def _print_published(dataset: str, task: str, budget: str, storage: Optional[Path]) -> None:
    from t2g_assets.partitions import task_budget_key
    from t2g_assets.resources import T2GSettings, default_storage_dir
    from t2g_lib.export import parquet_bytes

    settings = T2GSettings(data_dir=str(data_dir()), storage_dir=str(storage or default_storage_dir()))
    out = settings.stage_dir(dataset, "distilled_database", task_budget_key(task, budget))
    source = parquet_bytes(settings.dataset_path(dataset) / "db")
    distilled = parquet_bytes(out / "relbench" / "db")
    typer.echo(f"distilled database: {out}")
    typer.echo(f"  RelBench folder {out / 'relbench'}, DuckDB {out / 'distilled.duckdb'}, PyG {out / 'graph.pt'}")
    typer.echo(f"  {distilled:,} bytes vs {source:,} bytes of source tables: {source / max(distilled, 1):.1f}x smaller")


@app.command()
def demo(
    task: str = typer.Option("player-retention", help="Lahman task to distill"),
    ratio: str = typer.Option("0.01", help="Budget"),
    evaluate: bool = typer.Option(True, help="Train and score GNNs on the distilled graph"),
    models: str = typer.Option("sage", help="GNNs the evaluation trains (sage,hgt,han for all)"),
    epochs: int = typer.Option(2, help="Epochs of full-data training (the benchmark uses 5)"),
) -> None:
    """Prepare Lahman (once) and run the whole chain on it: the main job, end to end."""
    from t2g_lib.data.lahman import build_lahman

    if not (data_dir() / "lahman" / "manifest.yaml").exists():
        typer.echo("preparing the Lahman database ...")
        build_lahman(data_dir())
    runs = _distill("lahman", task, ratio, 0, None, evaluate, models, epochs)
    if all(r.success for r in runs):
        _print_published("lahman", task, ratio, None)
    if evaluate:
        _print_scores("lahman", task, ratio)


def _print_scores(dataset: str, task: str, budget: str) -> None:
    import pandas as pd

    from t2g_assets.partitions import task_budget_key
    from t2g_assets.resources import T2GSettings, default_storage_dir
    from t2g_lib.evaluate import scores_markdown

    settings = T2GSettings(data_dir=str(data_dir()), storage_dir=default_storage_dir())
    path = settings.stage_dir(dataset, "evaluation_scores", task_budget_key(task, budget)) / "scores.csv"
    typer.echo(scores_markdown(pd.read_csv(path)))


if __name__ == "__main__":
    app()
