"""Jobs: the database-level chain and the task-level chain, run per partition."""

from dagster import AssetSelection, define_asset_job

from t2g_assets.partitions import database_partitions, task_partitions

database_job = define_asset_job(
    "distill_database",
    selection=AssetSelection.groups("database") - AssetSelection.assets("dataset_source"),
    partitions_def=database_partitions,
    description="raw_tables -> validated_schema -> column_tokens -> cluster_pretraining for one database.",
)

task_job = define_asset_job(
    "distill_task",
    selection=AssetSelection.groups("distillation", "evaluation"),
    partitions_def=task_partitions,
    description="sbm_structure -> distilled_features -> evaluation_scores -> distilled_database.",
)
