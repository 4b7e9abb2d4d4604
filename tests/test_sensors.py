"""Change detection and self-registration, evaluated against a real Dagster instance."""

import pytest
from dagster import SkipReason, build_run_status_sensor_context, build_sensor_context, instance_for_test

from dagster_env import Env
from shop import make_shop, overwrite_table, shop_tables
from t2g_assets.definitions import build_definitions
from t2g_assets.resources import T2GSettings
from t2g_assets.sensors import dataset_sensor, redistill_tasks


@pytest.fixture()
def env(tmp_path):
    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        yield Env(tmp_path / "data", tmp_path / "storage", instance)


def settings(env) -> dict:
    """The sensors read the same settings resource as the assets: folders and budgets."""
    return {"settings": T2GSettings(data_dir=str(env.data_dir), storage_dir=str(env.storage_dir),
                                    text_cache_dir=str(env.storage_dir / "text_cache"), budgets=["0.01", "n20"])}


def evaluate(env):
    return dataset_sensor(build_sensor_context(instance=env.instance, resources=settings(env)))


def test_new_folder_registers_partitions_and_requests_a_run(env):
    assert isinstance(evaluate(env), SkipReason)  # nothing in the data folder yet
    make_shop(env.data_dir / "shop")
    result = evaluate(env)
    added = {(r.partitions_def_name, tuple(r.partition_keys)) for r in result.dynamic_partitions_requests}
    assert ("database", ("shop",)) in added
    assert ("task_budget", ("churn@0.01", "churn@n20")) in added
    assert [r.partition_key for r in result.run_requests] == ["shop"]


def test_unchanged_source_costs_nothing_and_a_changed_table_reruns(env):
    make_shop(env.data_dir / "shop")
    env.register("shop")
    assert env.run(["raw_tables"], "shop").success
    env.instance.add_dynamic_partitions("task_budget", ["churn@0.01", "churn@n20"])
    assert isinstance(evaluate(env), SkipReason)  # fingerprint matches the materialization

    order = shop_tables()["order"]
    order.loc[0, "quantity"] = 99
    overwrite_table(env.data_dir / "shop", "order", order)
    result = evaluate(env)
    assert [(r.partition_key, r.job_name) for r in result.run_requests] == [("shop", "distill_database")]
    first_key = result.run_requests[0].run_key
    assert env.run(["raw_tables"], "shop").success  # the re-distillation records the new fingerprint
    assert isinstance(evaluate(env), SkipReason)
    assert first_key.startswith("shop:")


def test_successful_database_run_requests_each_task_budget(env):
    make_shop(env.data_dir / "shop")
    env.register("shop", ["churn@0.01", "churn@n20"])
    result = env.run(["raw_tables"], "shop")
    run = env.instance.get_run_by_id(result.run_id)
    context = build_run_status_sensor_context(
        sensor_name="redistill_tasks",
        dagster_instance=env.instance,
        dagster_run=run,
        dagster_event=result.get_run_success_event(),
        resources=settings(env),
    )
    requests = redistill_tasks(context)
    keys = sorted(str(r.partition_key) for r in requests)
    assert keys == ["churn@0.01|shop", "churn@n20|shop"] or keys == ["shop|churn@0.01", "shop|churn@n20"]


def test_definitions_load_with_sensors_and_schedule():
    defs = build_definitions()
    assert defs.resolve_sensor_def("dataset_sensor").minimum_interval_seconds == 30
    schedule = defs.resolve_schedule_def("nightly_recheck")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 2 * * *", "distill_database")
