"""A failed run resumes from its failure; a partition's chain runs on a Dask cluster."""

from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    ReexecutionOptions,
    build_reconstructable_job,
    execute_job,
    instance_for_test,
)

from dagster_env import Env
from shop import make_shop
from t2g_assets.partitions import task_partition_key, task_partitions

TESTS = str(Path(__file__).parent)


@pytest.fixture()
def env(tmp_path):
    make_shop(tmp_path / "data" / "shop")
    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        e = Env(tmp_path / "data", tmp_path / "storage", instance)
        e.register("shop", ["churn@0.2"])
        yield e


def test_failed_run_reexecutes_from_failure_without_recomputing(env, monkeypatch):
    assert env.run(env.stages("database"), "shop", raise_on_error=True).success
    job = build_reconstructable_job(
        "job_builders", "task_job", (str(env.data_dir), str(env.storage_dir)), reconstructor_working_directory=TESTS
    )
    key = task_partition_key("shop", "churn", "0.2")

    import t2g_lib.krr

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure in distilled_features")

    monkeypatch.setattr(t2g_lib.krr, "distill_features", broken)
    tags = dict(task_partitions.get_tags_for_partition_key(key))
    with execute_job(job, env.instance, tags=tags, raise_on_error=False) as first:
        assert not first.success
        first_id = first.run_id
    sbm_before = env.instance.fetch_materializations(AssetKey("sbm_structure"), limit=10).records
    assert len(sbm_before) == 1  # the stage before the failure is materialized and stays readable

    monkeypatch.undo()
    options = ReexecutionOptions.from_failure(first_id, env.instance)
    with execute_job(job, env.instance, tags=tags, reexecution_options=options, raise_on_error=True) as second:
        assert second.success
        steps = {e.step_key for e in second.all_events if e.is_step_success}
    assert "sbm_structure" not in steps and "distilled_features" in steps
    assert len(env.instance.fetch_materializations(AssetKey("sbm_structure"), limit=10).records) == 1


def _sigterm_handler() -> int:
    import signal

    return int(signal.getsignal(signal.SIGTERM))


def test_database_chain_runs_on_a_two_worker_dask_cluster(env, signals_ignored):
    """Workers started with SIGTERM ignored get it back (else each step waits 30 s on its log tail)."""
    import signal

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert set(client.run(_sigterm_handler).values()) == {signal.SIG_IGN}
        job = build_reconstructable_job(
            "job_builders",
            "database_job_on_dask",
            (str(env.data_dir), str(env.storage_dir), cluster.scheduler_address),
            reconstructor_working_directory=TESTS,
        )
        with execute_job(job, env.instance, tags={"dagster/partition": "shop"}, raise_on_error=True) as result:
            assert result.success
            materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
        with Client(cluster) as client:
            assert set(client.run(_sigterm_handler).values()) == {signal.SIG_DFL}
    assert set(env.stages("database")) <= materialized


def test_distill_command_runs_its_stages_on_dask_workers(tmp_path, monkeypatch):
    """``T2G_EXECUTOR=dask t2g distill`` runs both jobs through the Dask executor: every stage
    runs in a worker process (rebuilt from the command's settings), none in the command's."""
    import os

    from dagster import DagsterInstance
    from typer.testing import CliRunner

    from shop import quick_knobs
    from t2g_cli.main import app

    make_shop(tmp_path / "data" / "shop")
    (tmp_path / "home").mkdir()
    for name, value in {"T2G_DATA_DIR": tmp_path / "data", "DAGSTER_HOME": tmp_path / "home",
                        "T2G_EXECUTOR": "dask", "T2G_DASK_MEMORY_LIMIT": "3GiB"}.items():
        monkeypatch.setenv(name, str(value))
    result = CliRunner().invoke(
        app, ["distill", "shop", "churn", "--ratio", "0.2", "--out", str(tmp_path / "storage"), *quick_knobs(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "distilled database:" in result.output
    with DagsterInstance.get() as inst:
        runs = [r for r in inst.get_runs() if r.job_name in ("distill_database", "distill_task")]
        pids = {e.dagster_event.pid for r in runs for e in inst.all_logs(r.run_id)
                if e.dagster_event is not None and e.dagster_event.is_step_start}
        steps = {e.step_key for r in runs for e in inst.all_logs(r.run_id)
                 if e.dagster_event is not None and e.dagster_event.is_step_success}
    assert len(runs) == 2
    assert {"column_tokens", "cluster_pretraining", "distilled_features", "distilled_database"} <= steps
    assert pids and os.getpid() not in pids
