"""Reconstructable jobs for tests that cross process boundaries (re-execution, Dask)."""

from dagster import in_process_executor


def task_job(data_dir: str, storage_dir: str):
    """The task-level job over the given folders, in process (so tests can inject faults)."""
    from t2g_assets.definitions import build_definitions

    defs = build_definitions(data_dir=data_dir, storage_dir=storage_dir, device="cpu", executor=in_process_executor,
                             eval_models=["sage"], eval_epochs=1, eval_steps_distilled=10,
                             utility_floor=None)  # resumability, not the gate, is under test
    return defs.resolve_job_def("distill_task")


def database_job_on_dask(data_dir: str, storage_dir: str, address: str):
    """The database-level job on an existing Dask cluster, as T2G_DASK_ADDRESS configures it."""
    from t2g_assets.definitions import build_definitions
    from t2g_assets.executors import make_executor

    defs = build_definitions(data_dir=data_dir, storage_dir=storage_dir, device="cpu", executor=make_executor("dask", address))
    return defs.resolve_job_def("distill_database")
