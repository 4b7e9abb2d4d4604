"""The leakage gate's measure: does any sampled row postdate the label it serves?

Row times are read again from the database's own time columns rather than trusted from the
sampler, so a sampler bug or a mislabelled split shows up here before any model is trained.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from relbench.base import Database
from torch_geometric.data import HeteroData

from t2g_lib.graph import GraphSchema
from t2g_lib.temporal import to_seconds

if TYPE_CHECKING:
    from t2g_lib.train import SampledSplit


class LeakageReport(NamedTuple):
    """``passed`` is False when a sampled row is stamped after its seed's label time."""

    passed: bool
    max_leak_seconds: int
    examples: list[dict]


def check_leakage(
    db: Database,
    entity_table: str,
    samples: Iterable[tuple[HeteroData, np.ndarray]],
    max_examples: int = 5,
) -> LeakageReport:
    """Check sampled subgraphs against the label times they were drawn for.

    ``samples`` yields (subgraph, label time in seconds of each of its seeds); every node
    carries ``n_id`` (its row) and ``batch`` (its seed). Row times are read again from
    ``db`` rather than trusted from the sampler. ``max_leak_seconds`` is the largest
    amount by which a row postdates its seed's label (0 when none does); ``examples``
    name the worst offenders by table and row.
    """
    schema = GraphSchema.from_database(db)
    row_times = {}
    for table in schema.tables:
        col = db.table_dict[table].time_col
        if col is not None:
            row_times[table] = to_seconds(db.table_dict[table].df[col])
    seed_nt = schema.node_type(entity_table)
    worst, found = 0, []
    for sub, label_times in samples:
        label_times = np.asarray(label_times, dtype=np.int64)
        seed_rows = sub[seed_nt].n_id.numpy()[: len(label_times)]
        for table, times in row_times.items():
            store = sub[schema.node_type(table)]
            if store.num_nodes == 0:
                continue
            rows, seeds = store.n_id.numpy(), store.batch.numpy()
            leak = times[rows] - label_times[seeds]
            bad = np.flatnonzero(leak > 0)
            if len(bad) == 0:
                continue
            worst = max(worst, int(leak[bad].max()))
            for i in bad[np.argsort(-leak[bad], kind="stable")][:max_examples]:
                found.append({
                    "table": table,
                    "row": int(rows[i]),
                    "row_time": str(pd.Timestamp(int(times[rows[i]]), unit="s")),
                    "seed_row": int(seed_rows[seeds[i]]),
                    "label_time": str(pd.Timestamp(int(label_times[seeds[i]]), unit="s")),
                    "leak_seconds": int(leak[i]),
                })
    found.sort(key=lambda e: -e["leak_seconds"])
    return LeakageReport(worst == 0, worst, found[:max_examples])


def check_split_leakage(db: Database, entity_table: str, splits: dict[str, SampledSplit]) -> LeakageReport:
    """``check_leakage`` over several label splits; each example names its ``split``."""
    worst, found = 0, []
    for name, split in splits.items():
        report = check_leakage(db, entity_table, split.samples())
        worst = max(worst, report.max_leak_seconds)
        found += [{"split": name, **e} for e in report.examples]
    found.sort(key=lambda e: -e["leak_seconds"])
    return LeakageReport(worst == 0, worst, found[:5])
