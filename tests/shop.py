"""A small shop database built in code: the fixture for pipeline and orchestration tests.

Names are chosen to break naive code: a table called ``order`` (an SQL keyword), a column
with a space (``unit price``) and one with a non-ASCII letter (``région``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from relbench.manifest import TableSpec, TaskManifest

from t2g_lib.data.format import write_dataset, write_task

CHURN_SQL = """
SELECT t.timestamp, c.customer_id, CAST(EXISTS (
    SELECT 1 FROM "order" o
    WHERE o.customer_id = c.customer_id
      AND o.placed > t.timestamp AND o.placed <= t.timestamp + INTERVAL '{timedelta}'
) AS INTEGER) AS churn_back
FROM timestamps t, customers c
WHERE EXISTS (
    SELECT 1 FROM "order" o2
    WHERE o2.customer_id = c.customer_id
      AND o2.placed <= t.timestamp AND o2.placed > t.timestamp - INTERVAL '{timedelta}'
)
"""


def shop_tables(n_customers: int = 80, n_products: int = 12, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Customers of two kinds: loyal ones order every week, others rarely."""
    rng = np.random.default_rng(seed)
    loyal = rng.random(n_customers) < 0.5
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(n_customers),
            "age": rng.integers(18, 80, n_customers).astype(float),
            "région": rng.choice(["nord", "sud", "est"], n_customers),
            "bio": [
                "frequent buyer who loves weekly deals" if l else "occasional visitor browsing the catalogue"
                for l in loyal
            ],
        }
    )
    customers.loc[3, "age"] = np.nan
    products = pd.DataFrame(
        {
            "product_id": np.arange(n_products),
            "unit price": rng.uniform(1, 50, n_products).round(2),
            "category": rng.choice(["food", "tools", "toys"], n_products),
        }
    )
    start = pd.Timestamp("2024-01-01")
    rows = []
    for c in range(n_customers):
        step = 7 if loyal[c] else 45
        day = int(rng.integers(0, step))
        while day < 360:
            rows.append((c, int(rng.integers(0, n_products)), start + pd.Timedelta(days=day), int(rng.integers(1, 5))))
            day += step + int(rng.integers(0, 3))
    order = pd.DataFrame(rows, columns=["customer_id", "product_id", "placed", "quantity"])
    order = order.sort_values("placed", kind="stable").reset_index(drop=True)
    order.insert(0, "order_id", np.arange(len(order)))
    return {"customers": customers, "products": products, "order": order}


SPECS = {
    "customers": TableSpec(pkey="customer_id"),
    "products": TableSpec(pkey="product_id"),
    "order": TableSpec(
        pkey="order_id", time_col="placed", fkeys={"customer_id": "customers", "product_id": "products"}
    ),
}


def make_shop(path: Path, seed: int = 0) -> Path:
    """Write the shop as a RelBench dataset with a binary ``churn`` task."""
    write_dataset(path, "shop", shop_tables(seed=seed), SPECS, "2024-09-01", "2024-10-15")
    write_task(
        path,
        TaskManifest(
            name="churn",
            kind="forecast",
            task_type="binary_classification",
            entity_table="customers",
            entity_col="customer_id",
            target_col="churn_back",
            time_col="timestamp",
            timedelta="30 days",
            sql=CHURN_SQL,
        ),
    )
    return Path(path)


def overwrite_table(dataset: Path, table: str, df: pd.DataFrame) -> None:
    """Replace one parquet file behind the manifest's back, as a changed source would."""
    df.to_parquet(Path(dataset) / "db" / f"{table}.parquet", index=False)


QUICK_KNOBS = "distilled_features: {steps: 20, gnn_every: 10, gnn_steps: 20}\nablation_features: {steps: 20}\n"


def quick_knobs(folder: Path) -> list[str]:
    """``t2g distill`` arguments for a short KRR distillation (a knobs file written into
    ``folder``): for tests about the command and the pipeline, not about the method."""
    path = Path(folder) / "quick_knobs.yaml"
    path.write_text(QUICK_KNOBS)
    return ["--config", str(path)]
