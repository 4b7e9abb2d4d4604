"""The dataset folders themselves, fingerprinted so Dagster knows when a source changed."""


from dagster import DataVersion, DataVersionsByPartition, observable_source_asset

from t2g_assets.partitions import database_partitions
from t2g_assets.resources import T2GSettings


@observable_source_asset(partitions_def=database_partitions, group_name="database")
def dataset_source(context, settings: T2GSettings) -> DataVersionsByPartition:
    """Content hash of each database's manifest, parquet files and task manifests."""
    from t2g_lib.data.registry import fingerprint_dataset

    keys = context.instance.get_dynamic_partitions(database_partitions.name)
    versions: dict[str, DataVersion] = {}
    for key in keys:
        path = settings.dataset_path(key)
        if (path / "manifest.yaml").exists():
            versions[key] = DataVersion(fingerprint_dataset(path))
    return DataVersionsByPartition(versions)
