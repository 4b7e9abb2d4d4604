"""The quality gates of ``evaluation_scores``, as asset check results: what blocks publication."""

from __future__ import annotations

from dagster import AssetCheckResult, MetadataValue


def leakage_check(leakage: dict) -> AssetCheckResult:
    """``no_temporal_leakage``: fails when a sampled row postdates its label, naming both."""
    worst = int(leakage["max_leak_seconds"])
    if leakage["passed"]:
        description = "no sampled row is later than its label's timestamp"
    else:
        e = leakage["examples"][0] if leakage["examples"] else {}
        description = f"a sampled row is {worst} s later than its label's timestamp"
        if "table" in e:
            description += (
                f": table {e['table']!r}, row {e['row']} ({e['row_time']}) was sampled for the "
                f"{e['split']} label of entity row {e['seed_row']} at {e['label_time']}"
            )
    return AssetCheckResult(
        check_name="no_temporal_leakage",
        passed=bool(leakage["passed"]),
        description=description,
        metadata={"max_leak_seconds": worst, "examples": MetadataValue.json(leakage["examples"])},
    )


def utility_check(retention: float, floor: float | None) -> AssetCheckResult:
    """``utility_retention``: T2G keeps at least ``floor`` of full-data utility (no floor: off)."""
    if floor is None:
        return AssetCheckResult(
            check_name="utility_retention",
            passed=True,
            description=f"no utility floor set (gate off); T2G keeps {retention:.3f} of full-data utility",
            metadata={"retention": float(retention)},
        )
    return AssetCheckResult(
        check_name="utility_retention",
        passed=bool(retention >= floor),
        description=f"T2G keeps {retention:.3f} of full-data utility (floor {floor})",
        metadata={"retention": float(retention), "floor": float(floor)},
    )
