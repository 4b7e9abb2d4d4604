"""Jobs: the database-level chain and the task-level chain, run per partition."""

from dagster import AssetSelection, HookContext, define_asset_job, success_hook

from t2g_lib.memory import release_freed_memory


@success_hook(name="release_freed_memory")
def release_memory(context: HookContext) -> None:
    """After every stage: in a one-process run the next stage starts without the last one's
    freed pages (``t2g_lib.memory``)."""
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
