"""Executor choice: multiprocess on one machine by default, Dask when configured.

``T2G_EXECUTOR=dask`` runs each step as a Dask task; ``T2G_DASK_ADDRESS`` points it at an
existing cluster (``tcp://scheduler:8786``), otherwise a local cluster is started. The
multiprocess executor's ``T2G_MAX_CONCURRENT`` bounds parallel steps (default 2: the cores
of this machine).
"""

from __future__ import annotations

import os

from dagster import ExecutorDefinition, multiprocess_executor


def executor_from_env() -> ExecutorDefinition:
    kind = os.environ.get("T2G_EXECUTOR", "multiprocess")
    if kind == "dask":
        from dagster_dask import dask_executor

        address = os.environ.get("T2G_DASK_ADDRESS")
        cluster = {"existing": {"address": address}} if address else {"local": {"n_workers": 2, "threads_per_worker": 1}}
        return dask_executor.configured({"cluster": cluster})
    if kind == "multiprocess":
        return multiprocess_executor.configured(
            {"max_concurrent": int(os.environ.get("T2G_MAX_CONCURRENT", "2"))}
        )
    raise ValueError(f"T2G_EXECUTOR must be 'multiprocess' or 'dask', not {kind!r}")
