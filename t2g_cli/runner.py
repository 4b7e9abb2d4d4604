"""Run t2g's jobs for one partition through Dagster and say, in a few lines, what happened.

The CLI and the benchmark run the very jobs the UI shows (``distill_database``,
``distill_task``), one Dagster run per partition, against the project's instance
(``DAGSTER_HOME``): every CLI run appears in the UI with its lineage and metadata, and
Dagster orders the steps. The stages of a job come from its asset selection, never a list.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

DATABASE_JOB = "distill_database"
TASK_JOB = "distill_task"


@dataclass
class CheckFailure:
    """A failed asset check: its stage, name, description and the metadata naming the rows."""

    stage: str
    check: str
    description: str
    blocking: bool
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageRun:
    stage: str
    seconds: float
    success: bool
    error: Optional[str] = None
    failed_checks: list[CheckFailure] = field(default_factory=list)


@dataclass
class JobRun:
    """One Dagster run of a job for one partition, stage by stage (skipped stages are absent)."""

    run_id: str
    success: bool
    stages: list[StageRun]
    materialized: set[str] = field(default_factory=set)

    @property
    def failed(self) -> Optional[StageRun]:
        return next((s for s in self.stages if not s.success), None)


def instance():
    """The project's Dagster instance (``DAGSTER_HOME``), or a temporary one when unset."""
    from dagster import DagsterInstance

    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def register(inst, database: str, task_budgets: list[str]) -> None:
    from t2g_assets.partitions import database_partitions, task_budget_partitions

    if not inst.has_dynamic_partition(database_partitions.name, database):
        inst.add_dynamic_partitions(database_partitions.name, [database])
    missing = [k for k in task_budgets if not inst.has_dynamic_partition(task_budget_partitions.name, k)]
    if missing:
        inst.add_dynamic_partitions(task_budget_partitions.name, missing)


def job_stages(defs, job_name: str) -> list[str]:
    """The assets a job materializes, in dependency order."""
    selected = defs.resolve_job_def(job_name).asset_layer.selected_asset_keys
    return [k.to_user_string() for k in defs.resolve_asset_graph().toposorted_asset_keys if k in selected]


#: Settings a database-level materialization depends on beyond code and data versions.
_SETTINGS_KEYS = ("data_dir", "storage_dir", "seed", "max_dangling_fraction")
SETTINGS_TAG = "t2g/settings"


def settings_tag(defs) -> str:
    """The run tag naming the settings a run used (folders, seed, bounds)."""
    settings = defs.resources["settings"]
    return json.dumps({k: getattr(settings, k) for k in _SETTINGS_KEYS}, sort_keys=True)


def stage_knobs(defs) -> dict[str, list[str]]:
    """stage -> the names of its run config knobs, for the stages that have any."""
    graph = defs.resolve_asset_graph()
    knobs = {}
    for key in graph.toposorted_asset_keys:
        if not graph.get(key).is_materializable:
            continue
        field = defs.resolve_assets_def(key).op.config_field
        fields = getattr(field.config_type, "fields", None) if field is not None else None
        if fields:
            knobs[key.to_user_string()] = sorted(fields)
    return knobs


def knobs_run_config(knobs: dict[str, dict], stages: list[str]) -> dict:
    """The ``ops`` run config giving each of ``stages`` its knobs (those with none are absent)."""
    return {"ops": {s: {"config": knobs[s]} for s in stages if knobs.get(s)}}


def stale_stages(defs, inst, job_name: str, partition_key: str, knobs: Optional[dict] = None) -> list[str]:
    """The stages of ``job_name`` to recompute for ``partition_key``; the rest are up to date.

    Up to date, as Dagster tracks it: materialized, with the same code version and upstream
    data versions (the source's content hash, observed first), by a run with the same
    settings and the same run config for the stage (``knobs``: stage -> knobs, none by
    default). Once a stage is stale, every stage after it in the chain is recomputed too.
    """
    from dagster import AssetKey
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.definitions.observe import observe
    from dagster._time import get_current_datetime

    from t2g_assets.assets.source import dataset_source

    observe([dataset_source], instance=inst, resources=defs.resources,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=inst, asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(inst, graph, view)
    settings = settings_tag(defs)
    stages = job_stages(defs, job_name)
    for i, stage in enumerate(stages):
        key = AssetKey(stage)
        fresh = resolver.get_status(key, partition_key) == StaleStatus.FRESH
        wanted = (settings, (knobs or {}).get(stage) or None)
        if not fresh or _materialized_with(inst, key, partition_key) != wanted:
            return stages[i:]
    return []


def _materialized_with(inst, key, partition_key: str) -> tuple[str | None, dict | None] | None:
    """The settings tag and the stage's own run config (None for none) of the run behind the
    latest materialization of one partition, or None when that is unknown."""
    from dagster import AssetRecordsFilter

    records = inst.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records:
        return None
    run = inst.get_run_by_id(records[0].run_id)
    if run is None:
        return None
    config = ((run.run_config.get("ops") or {}).get(key.to_user_string()) or {}).get("config") or None
    return run.tags.get(SETTINGS_TAG), config


def group_stages(defs, group: str) -> set[str]:
    """The assets of one asset group (``evaluation``: what only ``--evaluate`` runs)."""
    graph = defs.resolve_asset_graph()
    return {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == group}


def chain_stages(defs, job_name: str, evaluate: bool, compare: bool = False) -> list[str]:
    """The stages of a job: the evaluation group's only if ``evaluate`` or ``compare``, the
    comparison group's (the ablation, the baselines and their scores) only if ``compare``."""
    skipped = set() if compare else group_stages(defs, "comparison")
    if not (evaluate or compare):
        skipped |= group_stages(defs, "evaluation")
    return [s for s in job_stages(defs, job_name) if s not in skipped]


def root_error(error) -> str:
    """The user's error inside Dagster's wrappers, as ``Type: message`` without a traceback."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return error.message.strip()


def step_windows(inst, run_id: str) -> list[tuple[str, float, float, Any]]:
    """(step, start, end, the ending event) of every step of a run that succeeded or failed,
    from the run's event log (times in seconds since the epoch)."""
    windows = []
    started: dict[str, float] = {}
    for entry in inst.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.is_step_start:
            started[entry.step_key] = entry.timestamp
        elif event.is_step_success or event.is_step_failure:
            windows.append((entry.step_key, started.get(entry.step_key, entry.timestamp), entry.timestamp, event))
    return windows


def rebuilt_job(job_name: str, definitions: str):
    """``job_name`` of the definitions that ``build_definitions(**json.loads(definitions))``
    makes (``"quiet": true`` for the CLI's console): how a process that did not build them,
    a Dask worker running a step, gets the job ``t2g distill`` runs."""
    from t2g_assets.definitions import build_definitions
    from t2g_cli.console import quiet_console

    kwargs = json.loads(definitions)
    loggers = {"console": quiet_console} if kwargs.pop("quiet", False) else None
    return build_definitions(**kwargs, loggers=loggers).resolve_job_def(job_name)


def partition_tags(job, partition_key: str) -> dict[str, str]:
    """The run tags naming ``partition_key`` (and its dimensions) for ``job``."""
    return dict(job.partitioned_config.get_tags_for_partition_key(partition_key, job_name=job.name))


def run_job(
    defs, job_name: str, partition_key, inst, stages: Optional[list[str]] = None, knobs: Optional[dict] = None,
    rebuild: Optional[str] = None,
) -> JobRun:
    """One run of ``job_name`` for ``partition_key`` (all its stages unless ``stages``), each
    stage with its knobs (``knobs``: stage -> run config; Dagster validates them).

    By default in this process (``execute_in_process``). With ``rebuild`` (the JSON of
    ``build_definitions``' arguments, see ``rebuilt_job``) through the definitions' own
    executor (``execute_job``): Dask's, where ``T2G_EXECUTOR=dask`` sets it."""
    from contextlib import nullcontext

    from dagster import AssetKey, build_reconstructable_job, execute_job

    from t2g_assets.jobs import CLI_SOURCE, SOURCE_TAG

    job = defs.resolve_job_def(job_name)
    selection = None if stages is None else [AssetKey(s) for s in stages]
    # the definitions' console logger (Dagster's or the CLI's), and the stages' knobs
    run_config = {"loggers": {"console": {}}, **knobs_run_config(knobs or {}, stages or job_stages(defs, job_name))}
    tags = {SOURCE_TAG: CLI_SOURCE, SETTINGS_TAG: settings_tag(defs)}
    if rebuild is None:
        running = nullcontext(job.execute_in_process(
            instance=inst, partition_key=partition_key, asset_selection=selection, raise_on_error=False,
            run_config=run_config, tags=tags,
        ))
    else:
        running = execute_job(
            build_reconstructable_job(__name__, rebuilt_job.__name__, (job_name, rebuild)), inst,
            run_config=run_config, tags={**tags, **partition_tags(job, partition_key)}, asset_selection=selection,
        )
    with running as result:
        return _job_run(defs, job_name, inst, result)


def _job_run(defs, job_name: str, inst, result) -> JobRun:
    """What a finished run did, stage by stage, from its result and event log."""
    by_stage: dict[str, StageRun] = {}
    for step, start, end, event in step_windows(inst, result.run_id):
        error = root_error(event.event_specific_data.error) if event.is_step_failure else None
        by_stage[step] = StageRun(step, end - start, event.is_step_success, error)
    for check in result.get_asset_check_evaluations():
        if check.passed:
            continue
        stage = check.asset_key.to_user_string()
        failure = CheckFailure(
            stage, check.check_name, check.description or "",
            check.blocking, {k: v.value for k, v in check.metadata.items()},
        )
        by_stage.setdefault(stage, StageRun(stage, 0.0, False)).failed_checks.append(failure)
    order = job_stages(defs, job_name)
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    return JobRun(result.run_id, result.success, [by_stage[s] for s in order if s in by_stage], materialized)


def describe_failure(stage: StageRun, max_rows: int = 3) -> list[str]:
    """A few lines naming a failed stage, its failed checks and their tables, columns and rows."""
    lines = []
    for check in stage.failed_checks:
        kind = "blocking check" if check.blocking else "check"
        lines.append(f"{stage.stage}: {kind} {check.check} failed: {check.description}")
        for failure in (check.metadata.get("failures") or [])[:max_rows]:
            where = ", ".join(f"{k} {failure[k]!r}" for k in ("table", "column") if failure.get(k) is not None)
            lines.append(f"  {where}: {failure.get('detail', '')}")
            for row in failure.get("rows", [])[:max_rows]:
                lines.append(f"    row {row['row']}: {row['values']}")
        for example in (check.metadata.get("examples") or [])[:max_rows]:
            lines.append(f"  {example}")
    if stage.error and not any(c.blocking for c in stage.failed_checks):
        lines.append(f"{stage.stage} failed: {stage.error}")
    return lines
