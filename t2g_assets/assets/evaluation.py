"""Scores: the gate that decides publication, and the comparison with every other method.

``evaluation_scores`` trains the evaluation GNNs on T2G's graph only and measures them
against the full-data references; its blocking checks gate ``distilled_database``.
``comparison_scores`` scores every method at the same budget (the ablation, the centroid
start, the coresets) and does not depend on the gate, so a refused distillation still shows
what the baselines did; a run that only publishes skips it and the graphs it needs.
"""

from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, MetadataValue, Output, asset
from dagster_duckdb import DuckDBResource

from t2g_assets.assets.database import load_snapshot
from t2g_assets.assets.task import DB_INPUT, load_task, partition
from t2g_assets.checks import leakage_check, utility_check
from t2g_assets.metadata import frame_table
from t2g_assets.partitions import task_partitions
from t2g_assets.resources import ComputeDevice, T2GSettings
from t2g_assets.versions import CODE_VERSION

TASK_INS = {"raw_tables": AssetIn(**DB_INPUT), "cluster_pretraining": AssetIn(**DB_INPUT)}


def eval_setup(context: AssetExecutionContext, settings: T2GSettings, device: ComputeDevice,
               duckdb: DuckDBResource, raw_tables: dict, **graphs):
    """The ``EvalSetup`` of this partition: the snapshot, the task, the run's settings and
    the graphs and references passed by name (``pretraining``, ``distilled``, ``full``, ...)."""
    from t2g_lib.protocol import EvalSetup

    return EvalSetup(
        db=load_snapshot(duckdb, partition(context)[0], raw_tables),
        task=load_task(context, duckdb, raw_tables),
        models=list(settings.eval_models),
        recipe=settings.distilled_recipe(),
        seed=settings.seed,
        device=device.torch_device(),
        log=context.log.info,
        **graphs,
    )


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="evaluation",
    ins=TASK_INS,
    check_specs=[
        AssetCheckSpec("no_temporal_leakage", asset="evaluation_scores", blocking=True),
        AssetCheckSpec("utility_retention", asset="evaluation_scores", blocking=True),
    ],
    kinds={"pytorch"},
)
def evaluation_scores(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining,
    distilled_features,
    full_training,
    gbm_reference,
):
    """The gate's score table (a DataFrame): GNNs trained on T2G's distilled graph against
    the same GNNs on the full database and the GBM reference.

    Two blocking checks gate publication: no training label saw a row from after its
    timestamp, and T2G keeps at least ``utility_floor`` of the full-data utility.
    """
    from t2g_lib.protocol import run_evaluation

    report = run_evaluation(eval_setup(
        context, settings, device, duckdb, raw_tables,
        pretraining=cluster_pretraining, distilled=distilled_features, full=full_training, gbm=gbm_reference,
    ))
    yield Output(report.scores, metadata=scores_metadata(report.scores, report.t2g_retention))
    yield leakage_check(report.leakage)
    yield utility_check(report.t2g_retention, settings.utility_floor)


@asset(
    code_version=CODE_VERSION,
    partitions_def=task_partitions,
    group_name="comparison",
    ins=TASK_INS,
    kinds={"pytorch"},
)
def comparison_scores(
    context: AssetExecutionContext,
    settings: T2GSettings,
    device: ComputeDevice,
    duckdb: DuckDBResource,
    raw_tables: dict,
    cluster_pretraining,
    distilled_features,
    ablation_features,
    baseline_graphs,
    full_training,
    gbm_reference,
):
    """The full score table (a DataFrame): every method at T2G's budget (T2G, its ablation,
    the centroid start, the subgraph coresets, the herding histories; ``few_labels`` with
    ``settings.few_labels_reference``) next to the full-data references. T2G's rows reuse
    the GNN judge's model as ``evaluation_scores`` does, so they are the gate's."""
    from t2g_lib.protocol import run_evaluation

    report = run_evaluation(eval_setup(
        context, settings, device, duckdb, raw_tables,
        pretraining=cluster_pretraining, distilled=distilled_features, ablation=ablation_features,
        baselines=baseline_graphs, full=full_training, gbm=gbm_reference, few_labels=settings.few_labels_reference,
    ))
    metadata = scores_metadata(report.scores, report.t2g_retention)
    metadata["no_temporal_leakage"] = bool(report.leakage["passed"])
    return Output(report.scores, metadata=metadata)


def scores_metadata(scores, t2g_retention: float) -> dict:
    """The score table (typed, sortable), its markdown, T2G's retention and the plot."""
    from t2g_lib.evaluate import COLUMNS, scores_markdown
    from t2g_lib.plots import plot_metric_vs_compression

    metadata = {
        "scores": frame_table(scores[COLUMNS]),
        "scores_markdown": MetadataValue.md(scores_markdown(scores)),
        "t2g_retention_best_model": t2g_retention,
    }
    if len(scores):
        png = plot_metric_vs_compression(scores)
        metadata["plot"] = MetadataValue.md(f"![metric vs compression](data:image/png;base64,{_b64(png)})")
    return metadata


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
