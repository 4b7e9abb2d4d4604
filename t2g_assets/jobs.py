"""Jobs: the database-level chain and the task-level chain, run per partition."""

from dagster import AssetSelection, HookContext, define_asset_job, success_hook

from t2g_lib.memory import release_freed_memory


SOURCE_TAG = "t2g/source"
CLI_SOURCE = "cli"  # ``t2g distill``'s runs: one process, ``execute_in_process``


def _drop_captured_output(context: HookContext) -> None:
    """Forget this stage's value in the captures that would keep it alive after the stage.

    Two captures hold it. The step's own is there for hooks to read (``op_output_values``),
    because a job with any hook captures every output: this hook is the only one and never
    reads it, and the step context sits in a reference cycle, so the value outlived the
    stage until the next full garbage collection (on TPC-H SF1 the tokens, 4 GiB, stayed
    through pretraining's first round). It is dropped in every run. The run's capture is
    ``execute_in_process``'s: it keeps every value until the run ends so that its result can
    hand them out; ``t2g distill`` never asks, so it is dropped in its runs only (tests read
    them from ``materialize``'s result). Dagster has no public switch for either
    (``core_execute_in_process`` takes one for the second, but ``execute_in_process``
    always sets it): both are read from the hook's step context, and where a Dagster
    version lays them out otherwise nothing is dropped."""
    step = getattr(context, "_step_execution_context", None)
    tags = getattr(getattr(step, "dagster_run", None), "tags", None) or {}
    captures = [getattr(step, "step_output_capture", None)]
    if tags.get(SOURCE_TAG) == CLI_SOURCE:
        captures.append(getattr(step, "output_capture", None))
    for capture in captures:
        if isinstance(capture, dict):
            for handle in [h for h in capture if getattr(h, "step_key", None) == context.step_key]:
                del capture[handle]


@success_hook(name="release_freed_memory")
def release_memory(context: HookContext) -> None:
    """After every stage: in a one-process run the next stage starts without the last one's
    value (``t2g distill``'s runs) or its freed pages (``t2g_lib.memory``)."""
    _drop_captured_output(context)
    release_freed_memory()


database_job = define_asset_job(
    "distill_database",
    selection=AssetSelection.groups("database") - AssetSelection.assets("dataset_source"),
    description="raw_tables -> validated_schema -> column_tokens -> cluster_pretraining for one database.",
    hooks={release_memory},
)

task_job = define_asset_job(
    "distill_task",
    selection=AssetSelection.groups("distillation", "evaluation", "comparison", "publication"),
    description="sbm_structure -> distilled_features -> (full_training, gbm_reference) -> evaluation_scores "
    "-> distilled_database, and (ablation_features, baseline_graphs) -> comparison_scores, for one database "
    "x task@budget.",
    hooks={release_memory},
)
