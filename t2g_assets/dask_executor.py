"""Dask executor that can run partitioned runs; ``make_executor("dask", ...)`` uses it.

dagster-dask 0.29.27's executor (with dagster 1.13.27) passes the ``DagsterRun`` to
``Client.submit`` as a plain argument. Dask walks every tuple among the arguments looking
for futures; ``DagsterRun`` is a tuple that allows iteration, but its ``partitions_subset``
(a ``KeyRangesPartitionsSubset`` on partitioned runs) is a ``@record`` that forbids it, so
submission fails with "Iteration is not allowed on `@record` KeyRangesPartitionsSubset".
This executor binds everything except the dependency futures into the submitted function
(a ``functools.partial``, which Dask does not walk) and keys each task by run as well as
step, so concurrent runs of one job on a shared scheduler do not share results. It supports
the ``existing`` and ``local`` clusters of dagster-dask's config.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial

from dagster import (
    DagsterEvent,
    Field,
    InitExecutorContext,
    Permissive,
    Selector,
    StringSource,
    executor,
    multiple_process_executor_requirements,
)
from dagster._core.errors import raise_execution_interrupts
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker
from distributed import Client, Future, LocalCluster, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from t2g_assets.signals import restore_ignored_signals


class DefaultSignals(WorkerPlugin):
    """Every worker of the cluster, present and future, with SIGINT / SIGTERM not ignored
    (``t2g_assets.signals``); ``setup`` runs on the worker's event loop, its main thread."""

    name = "t2g-default-signals"

    def setup(self, worker) -> None:
        restore_ignored_signals()


class PartitionSafeDaskExecutor(DaskExecutor):
    """dagster-dask's executor, submitting the run's state opaquely to Dask."""

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        if not plan_context.instance.is_persistent:
            raise ValueError("Dask execution requires a persistent DagsterInstance")
        run = plan_context.dagster_run
        with ExitStack() as stack:
            if self.cluster_type == "existing":
                cluster: str | LocalCluster = self.cluster_configuration["address"]
            else:
                cluster = stack.enter_context(LocalCluster(**self.build_dict(run.job_name)))
            client = stack.enter_context(Client(cluster))
            client.register_plugin(DefaultSignals())
            futures: dict[str, Future] = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    run_step = partial(
                        query_on_dask_worker,
                        recon_job=plan_context.reconstructable_job,
                        dagster_run=run,
                        run_config=plan_context.run_config,
                        step_keys=[step.key],
                        instance_ref=plan_context.instance.get_ref(),
                        known_state=execution_plan.known_state,
                    )
                    # The dependencies stay a plain argument: Dask orders the steps by them.
                    dependencies = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                    futures[step.key] = client.submit(
                        run_step,
                        dependencies,
                        key=f"{run.job_name}.{run.run_id}.{step.key}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
            completed = as_completed(list(futures.values()), with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, completed):
                yield from events


@executor(
    name="dask",
    requirements=multiple_process_executor_requirements(),
    config_schema={
        "cluster": Field(
            Selector(
                {
                    "existing": Field({"address": StringSource}, description="Connect to an existing scheduler."),
                    "local": Field(Permissive(), is_required=False, description="LocalCluster parameters."),
                }
            )
        )
    },
)
def partition_safe_dask_executor(init_context: InitExecutorContext) -> PartitionSafeDaskExecutor:
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return PartitionSafeDaskExecutor(cluster_type, cluster_configuration)
