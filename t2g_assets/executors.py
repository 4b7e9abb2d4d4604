"""Executor choice: multiprocess on one machine by default, Dask when configured.

``T2G_EXECUTOR=dask`` runs each step as a Dask task (through ``t2g_assets.dask_executor``,
which works around dagster-dask's failure on partitioned runs); ``T2G_DASK_ADDRESS`` points
it at an existing cluster (``tcp://scheduler:8786``), otherwise a local cluster of two
single-threaded workers is started, each held to ``T2G_DASK_MEMORY_LIMIT`` (Dask's
``memory_limit``, e.g. ``4GiB``; Dask's default, the machine's memory shared out, when unset;
an existing cluster keeps the limits its workers were started with). The
multiprocess executor's ``T2G_MAX_CONCURRENT`` bounds parallel steps (default 2: the cores
of this machine).
"""

from __future__ import annotations

import os

from dagster import ExecutorDefinition, multiprocess_executor


def executor_from_env() -> ExecutorDefinition:
    return make_executor(
        os.environ.get("T2G_EXECUTOR", "multiprocess"),
        os.environ.get("T2G_DASK_ADDRESS"),
        int(os.environ.get("T2G_MAX_CONCURRENT", "2")),
        os.environ.get("T2G_DASK_MEMORY_LIMIT"),
    )


def make_executor(kind: str, dask_address: str | None = None, max_concurrent: int = 2,
                  dask_memory_limit: str | None = None) -> ExecutorDefinition:
    """The multiprocess executor, or Dask's (on ``dask_address``, else a local cluster whose
    workers each hold at most ``dask_memory_limit``)."""
    if kind == "dask":
        from t2g_assets.dask_executor import partition_safe_dask_executor

        local = {"n_workers": 2, "threads_per_worker": 1}
        if dask_memory_limit:
            local["memory_limit"] = dask_memory_limit
        cluster = {"existing": {"address": dask_address}} if dask_address else {"local": local}
        return partition_safe_dask_executor.configured({"cluster": cluster})
    if kind == "multiprocess":
        return multiprocess_executor.configured({"max_concurrent": max_concurrent})
    raise ValueError(f"T2G_EXECUTOR must be 'multiprocess' or 'dask', not {kind!r}")
