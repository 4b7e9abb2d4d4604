"""The GBM reference: its aggregates obey the time rule exactly, and the model reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

from t2g_lib.entity_aggregates import child_aggregates, entity_columns, label_features, task_window_seconds
from t2g_lib.gbm_reference import GBM, fit_gbm_reference
from t2g_lib.task_data import TaskData

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-01")
TYPES = {
    "users": {"id": "key", "age": "numerical", "plan": "categorical", "joined": "timestamp", "secret": "numerical"},
    "orders": {"order_id": "key", "user_id": "key", "amount": "numerical", "at": "timestamp"},
}


def _db(orders: pd.DataFrame) -> Database:
    users = pd.DataFrame({
        "id": [0, 1, 2], "age": [30, 40, 50], "plan": ["a", "b", "a"],
        "joined": [T0 - 100 * DAY, T0 - 10 * DAY, pd.NaT], "secret": [1.0, 0.0, 1.0],
    })
    return Database({
        "users": Table(users, {}, "id", None),
        "orders": Table(orders.assign(order_id=np.arange(len(orders))), {"user_id": "users"}, "order_id", "at"),
    })


def _task(labels: pd.DataFrame, window=pd.Timedelta(days=30)) -> TaskData:
    return TaskData("t", "binary_classification", "users", "user_id", "ts", "y", labels, labels, labels, window)


def test_aggregates_count_only_rows_up_to_the_label_time() -> None:
    orders = pd.DataFrame({
        "user_id": [0, 0, 0, 0, 1],
        "amount": [1.0, 2.0, 4.0, 8.0, 16.0],
        "at": [T0 - 50 * DAY, T0 - 20 * DAY, T0, T0 + DAY, T0 - 5 * DAY],  # T0 + 1 day: after the label
    })
    labels = pd.DataFrame({"ts": [T0, T0, T0, T0 - 30 * DAY], "user_id": [0, 1, 2, 0], "y": [1, 0, 0, 1]})
    task = _task(labels)
    out = child_aggregates(_db(orders), task, labels, TYPES, set())
    p = "orders.user_id"
    assert out[f"{p}.count"].tolist() == [3, 1, 0, 1]  # the row at T counts, the one after does not
    assert out[f"{p}.count_window"].tolist() == [2, 1, 0, 1]  # (T - 30 days, T]
    assert out[f"{p}.count_prev_window"].tolist() == [1, 0, 0, 0]  # (T - 60 days, T - 30 days]
    assert out[f"{p}.days_since_last"].tolist()[:2] == [0, 5]
    assert out[f"{p}.days_since_first"].tolist()[0] == 50
    assert out[f"{p}.distinct_times"].tolist() == [3, 1, 0, 1]
    assert out[f"{p}.amount.mean"].tolist()[:2] == [pytest.approx(7 / 3), 16.0]
    assert np.isnan(out[f"{p}.amount.mean"].iloc[2])  # no visible order
    assert out[f"{p}.amount.sum_window"].tolist() == [6.0, 16.0, 0.0, 1.0]
    assert out[f"{p}.amount.sum_prev_window"].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_grandchild_rows_reach_the_entity_through_their_parent() -> None:
    orders = pd.DataFrame({"user_id": [0, 1, 0], "amount": [1.0, 2.0, 4.0],
                           "at": [T0 - 10 * DAY, T0 - 5 * DAY, T0 + DAY]})
    db = _db(orders)
    lines = pd.DataFrame({"order_id": [0, 0, 1, 2, pd.NA], "price": [3.0, 5.0, 7.0, 11.0, 13.0],
                          "at": [T0 - 10 * DAY] * 2 + [T0 - 5 * DAY, T0 + DAY, T0 - DAY]})
    db.table_dict["lines"] = Table(lines.astype({"order_id": "Int64"}), {"order_id": "orders"}, None, "at")
    types = {**TYPES, "lines": {"order_id": "key", "price": "numerical", "at": "timestamp"}}
    labels = pd.DataFrame({"ts": [T0, T0, T0], "user_id": [0, 1, 2], "y": [1, 0, 0]})
    out = child_aggregates(db, _task(labels), labels, types, set())
    p = "orders.user_id/lines.order_id"
    assert out[f"{p}.count"].tolist() == [2, 1, 0]  # user 0's line after T and the orphan line do not count
    assert out[f"{p}.price.sum_window"].tolist() == [8.0, 7.0, 0.0]
    assert out["orders.user_id.count"].tolist() == [1, 1, 0]


def test_odd_column_names_and_infinite_values_are_handled() -> None:
    odd = 'am"ount; --'
    orders = pd.DataFrame({"user_id": [0, 0], odd: [2.0, np.inf], "at": [T0 - DAY, T0 - DAY]})
    labels = pd.DataFrame({"ts": [T0], "user_id": [0], "y": [1]})
    types = {**TYPES, "orders": {"order_id": "key", "user_id": "key", odd: "numerical", "at": "timestamp"}}
    out = child_aggregates(_db(orders), _task(labels), labels, types, set())
    assert out[f"orders.user_id.{odd}.mean"].tolist() == [2.0]  # the infinity counts as missing
    assert out["orders.user_id.count"].tolist() == [2]


def test_entity_columns_hide_what_the_task_hides_and_date_relative_to_t() -> None:
    labels = pd.DataFrame({"ts": [T0, T0], "user_id": [1, 2], "y": [0, 1]})
    out = entity_columns(_db(pd.DataFrame({"user_id": [], "amount": [], "at": pd.to_datetime([])})),
                         _task(labels), labels, TYPES, {("users", "secret")})
    assert "users.secret" not in out.columns
    assert out["users.age"].tolist() == [40.0, 50.0]
    assert out["users.plan"].astype(str).tolist() == ["b", "a"] and out["users.plan"].dtype == "category"
    assert out["users.joined_days_before"].iloc[0] == 10 and np.isnan(out["users.joined_days_before"].iloc[1])


def test_window_falls_back_to_the_gap_between_label_times() -> None:
    labels = pd.DataFrame({"ts": [T0, T0 + 7 * DAY, T0 + 14 * DAY], "user_id": [0, 0, 0], "y": [0, 1, 0]})
    assert task_window_seconds(_task(labels, window=None)) == 7 * 86400
    assert task_window_seconds(_task(labels)) == 30 * 86400


def test_the_gbm_reads_a_planted_recency_signal_and_is_deterministic() -> None:
    """Label = the user ordered within the last 30 days; only the aggregates reveal it."""
    rng = np.random.default_rng(0)
    n_users, rows = 3, []
    for day in range(0, 720):
        rows.append((int(rng.integers(0, n_users)), float(rng.normal()), T0 + day * DAY))
    orders = pd.DataFrame(rows, columns=["user_id", "amount", "at"])
    stamps = [T0 + d * DAY for d in range(60, 720, 2)]
    labels = pd.DataFrame([(t, u) for t in stamps for u in range(n_users)], columns=["ts", "user_id"])
    db = _db(orders)
    x = label_features(db, _task(labels), labels, TYPES, set())
    labels["y"] = (x["orders.user_id.count_window"] > 10).astype(int)
    split = [len(labels) * 3 // 5, len(labels) * 4 // 5]
    task = TaskData("t", "binary_classification", "users", "user_id", "ts", "y", labels.iloc[: split[0]],
                    labels.iloc[split[0]: split[1]].reset_index(drop=True),
                    labels.iloc[split[1]:].reset_index(drop=True), pd.Timedelta(days=30))
    first = fit_gbm_reference(db, task, TYPES, set(), seed=0)
    again = fit_gbm_reference(db, task, TYPES, set(), seed=0)
    assert first.record["model"] == GBM and first.record["method"] == "full"
    assert first.record["auroc"] == again.record["auroc"] and first.features == again.features
    assert first.record["auroc"] > 0.9


def test_the_aggregate_columns_alone_give_the_same_features() -> None:
    """The teacher and the reference read a snapshot of keys, times and ``aggregate_columns``:
    without the text and the other tables' categories the features are the same."""
    from t2g_lib.entity_aggregates import aggregate_columns

    orders = pd.DataFrame({"user_id": [0, 1, 0, 2], "amount": [1.0, 2.0, 4.0, 8.0],
                           "at": [T0 - 9 * DAY, T0 - 5 * DAY, T0 - DAY, T0 + DAY],
                           "note": ["late", "gift", None, "x"], "channel": ["web", "shop", "web", "web"]})
    types = {"users": {**TYPES["users"], "bio": "text"},
             "orders": {**TYPES["orders"], "note": "text", "channel": "categorical"}}
    whole = _db(orders)
    whole.table_dict["users"].df["bio"] = ["a", "b", "c"]
    needed = aggregate_columns("users", types, {("users", "secret")})
    assert needed == {"users": ["age", "plan", "joined"], "orders": ["amount"]}
    some = Database({
        name: Table(t.df[[c for c in t.df.columns if c in {t.pkey_col, t.time_col, *t.fkey_col_to_pkey_table}
                          or c in needed[name]]], t.fkey_col_to_pkey_table, t.pkey_col, t.time_col)
        for name, t in whole.table_dict.items()
    })
    labels = pd.DataFrame({"ts": [T0, T0, T0 - 3 * DAY], "user_id": [0, 1, 2], "y": [1, 0, 1]})
    pd.testing.assert_frame_equal(label_features(some, _task(labels), labels, types, {("users", "secret")}),
                                  label_features(whole, _task(labels), labels, types, {("users", "secret")}))
