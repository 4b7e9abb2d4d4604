"""Jobs: the database-level chain and the task-level chain, run per partition."""

from dagster import AssetSelection, define_asset_job

database_job = define_asset_job(
    "distill_database",
    selection=AssetSelection.groups("database") - AssetSelection.assets("dataset_source"),
    description="raw_tables -> validated_schema -> column_tokens -> cluster_pretraining for one database.",
)

task_job = define_asset_job(
    "distill_task",
    selection=AssetSelection.groups("distillation", "evaluation", "comparison", "publication"),
    description="sbm_structure -> distilled_features -> (full_training, gbm_reference) -> evaluation_scores "
    "-> distilled_database, and (ablation_features, baseline_graphs) -> comparison_scores, for one database "
    "x task@budget.",
)
