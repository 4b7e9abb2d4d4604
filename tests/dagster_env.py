"""Real Dagster runs for tests: definitions over temporary folders and an instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from t2g_assets.definitions import build_definitions
from t2g_cli.runner import register


@dataclass
class Env:
    data_dir: Path
    storage_dir: Path
    instance: DagsterInstance
    settings: dict = field(default_factory=dict)

    def defs(self):
        return build_definitions(
            data_dir=str(self.data_dir),
            storage_dir=str(self.storage_dir),
            device="cpu",
            # Tests that are not about the utility gate keep it out of the way.
            **{"eval_models": ["sage"], "eval_epochs": 2, "eval_steps_distilled": 20, "utility_floor": None,
               **self.settings},
        )

    def run(self, stages: list[str], partition_key, raise_on_error: bool = False):
        defs = self.defs()
        return materialize(
            list(defs.assets),
            selection=[AssetKey(s) for s in stages],
            partition_key=partition_key,
            instance=self.instance,
            resources=defs.resources,
            raise_on_error=raise_on_error,
        )

    def stages(self, *groups: str) -> list[str]:
        """The assets of asset groups, in dependency order (stage lists come from the groups)."""
        from t2g_cli.runner import group_stages

        defs = self.defs()
        graph = defs.resolve_asset_graph()
        wanted = set().union(*(group_stages(defs, g) for g in groups))
        return [k.to_user_string() for k in graph.toposorted_asset_keys
                if k.to_user_string() in wanted and graph.get(k).is_materializable]

    def register(self, database: str, task_budgets: list[str] = ()) -> None:
        register(self.instance, database, list(task_budgets))


def check_results(result, asset: str) -> dict[str, bool]:
    """check name -> passed, for the checks evaluated on ``asset`` in ``result``'s run."""
    return {
        e.check_name: e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey(asset)
    }
