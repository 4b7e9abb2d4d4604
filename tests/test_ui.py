"""The UI end to end: dagster dev on loopback, GraphQL queries, a launched partition run."""

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shop import make_shop
from t2g_cli.ui import dagster_dev

ROOT = Path(__file__).parent.parent


def gql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out
    return out["data"]


def _add_partition(port: int, node: dict, key: str) -> None:
    """Add a database partition as a user would from the UI. The dataset sensor, running in
    the daemon beside it, registers the same folder on its own; when both insert at once the
    server answers HTTP 500 (a unique-key race in the instance's storage), so a failed
    mutation is accepted only where the partition is there afterwards."""
    query = ('mutation { addDynamicPartition(repositorySelector: {repositoryName: "%s", repositoryLocationName: "%s"}, '
             'partitionsDefName: "database", partitionKey: "%s") { __typename } }' % (node["name"], node["location"]["name"], key))
    try:
        kind = gql(port, query)["addDynamicPartition"]["__typename"]
        assert kind in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), kind
    except urllib.error.HTTPError:
        assert key in _database_partitions(port), f"addDynamicPartition failed and {key!r} is not a partition"


def _database_partitions(port: int) -> list[str]:
    """The keys of the dynamic ``database`` partitions, as the UI lists them."""
    return gql(port, '{ assetNodeOrError(assetKey: {path: ["raw_tables"]}) { ... on AssetNode { partitionKeys } } }')["assetNodeOrError"]["partitionKeys"]


def _ignored_signals(pid: int) -> int:
    """The bit mask of signals a process ignores (``SigIgn`` in its ``/proc`` status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)


@pytest.fixture()
def server(tmp_path, signals_ignored):
    """dagster dev, started from a process that ignores SIGINT and SIGTERM: SIGTERM still
    stops it, not the SIGKILL that follows after 60 s."""
    make_shop(tmp_path / "data" / "shop")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "T2G_DATA_DIR": str(tmp_path / "data"),
           "T2G_STORAGE_DIR": str(tmp_path / "storage"), "T2G_NUM_THREADS": "1"}
    with dagster_dev(ROOT, env) as (port, proc):
        assert not _ignored_signals(proc.pid) & (1 << (signal.SIGTERM - 1) | 1 << (signal.SIGINT - 1))
        yield port
    assert proc.poll() is not None  # nothing of dagster dev is left running
    assert proc.returncode != -signal.SIGKILL


def test_ui_lists_definitions_and_runs_a_partition(server):
    port = server
    assets = gql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    assert {"raw_tables", "validated_schema", "evaluation_scores"} <= {a["assetKey"]["path"][0] for a in assets}
    checks = gql(port, '{ assetNodeOrError(assetKey: {path: ["validated_schema"]}) { ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }')
    names = {c["name"]: c["blocking"] for c in checks["assetNodeOrError"]["assetChecksOrError"]["checks"]}
    assert names.get("primary_keys") is True
    repo = gql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } sensors { name } schedules { name } } } } }")
    node = repo["repositoriesOrError"]["nodes"][0]
    assert {s["name"] for s in node["sensors"]} == {"dataset_sensor", "redistill_tasks"}
    assert [s["name"] for s in node["schedules"]] == ["nightly_recheck"]

    _add_partition(port, node, "shop")
    launched = gql(port, """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {"p": {"selector": {"repositoryName": node["name"], "repositoryLocationName": node["location"]["name"],
                            "jobName": "distill_database", "assetSelection": [{"path": ["raw_tables"]}]},
               "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "shop"}]}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.time() + 300, None
    while time.time() < deadline:
        status = gql(port, '{ runOrError(runId: "%s") { ... on Run { status } } }' % run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(3)
    assert status == "SUCCESS"
    assert _database_partitions(port) == ["shop"]
