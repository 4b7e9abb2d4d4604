"""Materialized means cached: the runner recomputes only what Dagster says is out of date."""

from dagster import AssetKey, DagsterEventType, instance_for_test

from shop import make_shop
from t2g_assets.definitions import build_definitions
from t2g_cli.runner import DATABASE_JOB, job_stages, register, run_job, stale_stages

DB_STAGES = ["raw_tables", "validated_schema", "column_tokens", "cluster_pretraining"]


def test_a_changed_code_version_makes_every_database_stage_stale(tmp_path):
    make_shop(tmp_path / "data" / "shop")
    folders = {"data_dir": str(tmp_path / "data"), "storage_dir": str(tmp_path / "storage"), "device": "cpu"}
    defs = build_definitions(**folders)
    assert job_stages(defs, DATABASE_JOB) == DB_STAGES  # from the job's asset selection, in order
    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        register(inst, "shop", [])
        assert stale_stages(defs, inst, DATABASE_JOB, "shop") == DB_STAGES  # nothing materialized yet
        run = run_job(defs, DATABASE_JOB, "shop", inst)
        assert run.success
        # One process for the whole run: every stage hands its freed memory back when it ends.
        hooked = inst.all_logs(run.run_id, of_type=DagsterEventType.HOOK_COMPLETED)
        assert sorted(e.step_key for e in hooked) == sorted(DB_STAGES)
        assert stale_stages(defs, inst, DATABASE_JOB, "shop") == []
        changed = build_definitions(**folders, code_version="another")
        assert stale_stages(changed, inst, DATABASE_JOB, "shop") == DB_STAGES


def test_launchpad_run_config_reaches_the_method_and_is_not_reused_by_the_cli(tmp_path):
    make_shop(tmp_path / "data" / "shop")
    defs = build_definitions(data_dir=str(tmp_path / "data"), storage_dir=str(tmp_path / "storage"), device="cpu")
    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        register(inst, "shop", [])
        assert run_job(defs, DATABASE_JOB, "shop", inst).success
        job = defs.resolve_job_def(DATABASE_JOB)
        config = {"ops": {"cluster_pretraining": {"config": {"epochs": 3, "kmeans_every": 3}}}}
        result = job.execute_in_process(instance=inst, partition_key="shop", run_config=config,
                                        asset_selection=[AssetKey("cluster_pretraining")])
        assert result.output_for_node("cluster_pretraining").config.epochs == 3
        assert stale_stages(defs, inst, DATABASE_JOB, "shop") == ["cluster_pretraining"]
        # The CLI's own knobs (`t2g distill --config`): the same knobs reuse the stage, others do not.
        knobs = {"cluster_pretraining": {"epochs": 3, "kmeans_every": 3}}
        assert run_job(defs, DATABASE_JOB, "shop", inst, ["cluster_pretraining"], knobs).success
        assert stale_stages(defs, inst, DATABASE_JOB, "shop", knobs) == []
        assert stale_stages(defs, inst, DATABASE_JOB, "shop") == ["cluster_pretraining"]
        assert stale_stages(defs, inst, DATABASE_JOB, "shop", {"cluster_pretraining": {"epochs": 4}}) == ["cluster_pretraining"]


def test_release_freed_memory_finds_glibcs_trim() -> None:
    """On glibc (the project's Linux machines) the hook trims the heap, not only collects garbage."""
    import platform

    from t2g_lib.memory import _malloc_trim, release_freed_memory

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None
    assert isinstance(release_freed_memory(), bool)


def test_release_without_collecting_leaves_cycles_to_the_collector() -> None:
    """``collect=False`` trims without a garbage collection: a cycle survives it and goes
    with the next collection, which the default runs."""
    import gc
    import weakref

    from t2g_lib.memory import release_freed_memory

    gc.disable()
    try:
        a = _Value()
        a.self = a
        alive = weakref.ref(a)
        del a
        release_freed_memory(collect=False)
        assert alive() is not None
        release_freed_memory()
        assert alive() is None
    finally:
        gc.enable()


def test_releasing_pyarrows_pool_keeps_live_arrays() -> None:
    """The hook hands PyArrow's unused pages back (what it frees was measured on TPC-H SF0.3:
    0.7 GiB after column_tokens); arrays still alive keep their memory and values."""
    import numpy as np
    import pyarrow as pa

    from t2g_lib.memory import release_freed_memory

    import pyarrow.compute as pc

    pool = pa.default_memory_pool()
    kept = pc.add(pa.array(np.arange(1_000_000, dtype=np.int64)), 0)  # computed: allocated in the pool
    dropped = [pc.add(pa.array(np.arange(i, i + 100_000, dtype=np.float64)), 1.0) for i in range(50)]
    live = pool.bytes_allocated()
    del dropped
    release_freed_memory()
    assert pool.bytes_allocated() < live and pool.bytes_allocated() >= kept.nbytes
    assert kept[999_999].as_py() == 999_999 and kept.sum().as_py() == 999_999 * 1_000_000 // 2


class _Value:  # a stage's output; a weak reference tells whether anything still holds it
    pass


def _stage_value_alive_in_next_stage(tmp_path, tags: dict[str, str], hooked: bool = True) -> tuple[bool, object]:
    """Two stages in one process with garbage collection off: whether the first stage's
    value is still alive when the second starts (the second does not load it), and the
    run's result."""
    import gc
    import weakref

    from dagster import Definitions, FilesystemIOManager, asset, define_asset_job

    from t2g_assets.jobs import release_memory

    seen: dict[str, object] = {}

    @asset
    def first() -> _Value:
        value = _Value()
        seen["ref"] = weakref.ref(value)
        return value

    @asset(deps=[first])
    def second() -> None:
        seen["alive"] = seen["ref"]() is not None

    job = define_asset_job("two", hooks={release_memory} if hooked else set())
    defs = Definitions(assets=[first, second], jobs=[job], resources={"io_manager": FilesystemIOManager(base_dir=str(tmp_path))})
    gc.disable()  # only reference counts free the value: a cycle would keep it
    try:
        result = defs.resolve_job_def("two").execute_in_process(tags=tags)
    finally:
        gc.enable()
    assert result.success
    return bool(seen["alive"]), result


def test_a_cli_run_frees_each_stage_value_when_the_stage_ends(tmp_path) -> None:
    """``t2g distill``'s runs hold one stage's value at a time: on TPC-H SF1 the tokens (4 GiB)
    had stayed through pretraining's first round, held by the hook's own output capture and
    by ``execute_in_process``'s."""
    from t2g_assets.jobs import CLI_SOURCE, SOURCE_TAG

    alive, _ = _stage_value_alive_in_next_stage(tmp_path, {SOURCE_TAG: CLI_SOURCE})
    assert not alive
    alive, _ = _stage_value_alive_in_next_stage(tmp_path, {SOURCE_TAG: CLI_SOURCE}, hooked=False)
    assert alive  # without the hook, Dagster's capture keeps it


def test_other_runs_keep_their_values_for_the_result(tmp_path) -> None:
    """Runs that are not the CLI's (tests, ``materialize``) still hand out every value."""
    alive, result = _stage_value_alive_in_next_stage(tmp_path, {})
    assert alive and isinstance(result.output_for_node("first"), _Value)
