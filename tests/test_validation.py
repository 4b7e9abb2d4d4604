"""Great Expectations checks: a clean database passes, each defect names table, column, rows.

Table and column names are deliberately hostile (spaces, dots, SQL keywords, non-ASCII).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

from t2g_lib.validation import (
    CheckResult,
    check_column_types,
    check_foreign_keys,
    check_labels,
    check_not_empty,
    check_primary_keys,
    check_time_columns,
    validate_database,
)

USERS = "user accounts.v2"
ORDERS = "order"
REVIEWS = "Bewertungen ü"


def frames() -> dict[str, pd.DataFrame]:
    """Fresh, valid tables; tests break a copy."""
    users = pd.DataFrame(
        {
            "keys": np.arange(5),
            "signup time": pd.date_range("2020-01-01", periods=5, freq="D"),
            "naïve name": ["ann", "bob", "cy", "dee", "eve"],
            "score": [0.5, 1.5, np.nan, 2.0, 3.0],
        }
    )
    orders = pd.DataFrame(
        {
            "type": np.arange(8),
            "user.id": [0, 1, 2, 3, 4, 0, 1, 2],
            "update": pd.date_range("2021-01-01", periods=8, freq="h", tz="Europe/Berlin"),
            "amount €": np.linspace(1.0, 8.0, 8),
        }
    )
    reviews = pd.DataFrame(
        {
            "ключ": np.arange(4),
            "order": pd.array([0, 7, None, 3], dtype="Int64"),
            "text": ["good", "bad", "so so", "fine"],
        }
    )
    return {USERS: users, ORDERS: orders, REVIEWS: reviews}


def make_db(tables: dict[str, pd.DataFrame]) -> Database:
    return Database(
        {
            USERS: Table(tables[USERS], {}, "keys", "signup time"),
            ORDERS: Table(tables[ORDERS], {"user.id": USERS}, "type", "update"),
            REVIEWS: Table(tables[REVIEWS], {"order": ORDERS}, "ключ", None),
        }
    )


def rows(failure: dict) -> list[int]:
    return [r["row"] for r in failure["rows"]]


def only_failure(result: CheckResult) -> dict:
    assert not result.passed, result.message
    assert len(result.failures) == 1, result.failures
    return result.failures[0]


def test_clean_database_passes_every_check() -> None:
    results = validate_database(make_db(frames()))
    assert [r.check for r in results] == [
        "not_empty",
        "primary_keys",
        "foreign_keys",
        "time_columns",
        "column_types",
    ]
    for result in results:
        assert result.passed, result.message
        assert result.failures == []
        json.dumps(result.metadata)  # JSON-safe for Dagster metadata
    fkeys = results[2].metadata
    assert fkeys[REVIEWS]["order"] == {
        "parent": ORDERS,
        "n_rows": 4,
        "n_null": 1,
        "null_fraction": 0.25,
        "n_dangling": 0,
        "dangling_fraction": 0.0,
    }
    assert fkeys[ORDERS]["user.id"]["n_dangling"] == 0
    assert results[0].metadata == {USERS: {"n_rows": 5}, ORDERS: {"n_rows": 8}, REVIEWS: {"n_rows": 4}}
    assert results[3].metadata[ORDERS]["min"] == "2020-12-31T23:00:00"  # compared in UTC


def test_duplicate_primary_key() -> None:
    tables = frames()
    tables[USERS]["keys"] = [0, 1, 1, 3, 4]
    result = check_primary_keys(make_db(tables))
    failure = only_failure(result)
    assert (failure["table"], failure["column"]) == (USERS, "keys")
    assert rows(failure) == [1, 2]
    assert failure["rows"][0]["values"] == {
        "keys": 1,
        "signup time": "2020-01-02T00:00:00",
        "naïve name": "bob",
        "score": 1.5,
    }
    assert failure["detail"] == "2 rows hold duplicated values, e.g. [1]"
    assert result.severity == "ERROR"
    assert result.metadata[USERS]["n_duplicate_rows"] == 2
    assert f"table {USERS!r}, column 'keys'" in result.message and "(rows 1, 2)" in result.message


def test_null_primary_key() -> None:
    tables = frames()
    tables[REVIEWS]["ключ"] = [0, np.nan, 2, 3]
    failure = only_failure(check_primary_keys(make_db(tables)))
    assert (failure["table"], failure["column"], rows(failure)) == (REVIEWS, "ключ", [1])
    assert failure["detail"] == "1 null primary key value(s)"


@pytest.mark.parametrize(
    ("keys", "bad_rows", "reason"),
    [([0, 1, 2, 3, 10], [4], "not integers in 0..4"), ([1, 0, 2, 3, 4], [1], "not greater")],
)
def test_primary_key_must_be_row_position(keys: list[int], bad_rows: list[int], reason: str) -> None:
    tables = frames()
    tables[USERS]["keys"] = keys
    failure = only_failure(check_primary_keys(make_db(tables)))
    assert (failure["table"], failure["column"], rows(failure)) == (USERS, "keys", bad_rows)
    assert reason in failure["detail"] and "relbench" in failure["detail"]


def _dangling_db() -> Database:
    tables = frames()
    tables[ORDERS]["user.id"] = [0, 1, 2, 9, 4, np.nan, 7, 2]  # 2 of 7 non-null dangle
    return make_db(tables)


def test_dangling_foreign_key_above_bound() -> None:
    result = check_foreign_keys(_dangling_db(), max_dangling_fraction=0.1)
    failure = only_failure(result)
    assert (failure["table"], failure["column"], rows(failure)) == (ORDERS, "user.id", [3, 6])
    assert failure["rows"][0]["values"]["user.id"] == 9.0
    assert "e.g. [9.0, 7.0]" in failure["detail"] and repr(USERS) in failure["detail"]
    stats = result.metadata[ORDERS]["user.id"]
    assert stats["n_dangling"] == 2 and stats["n_null"] == 1
    assert stats["dangling_fraction"] == pytest.approx(2 / 7)
    assert f"table {ORDERS!r}, column 'user.id'" in result.message
    assert "(rows 3, 6)" in result.message


@pytest.mark.parametrize("bound", [2 / 7, 0.5])
def test_dangling_foreign_key_within_bound(bound: float) -> None:
    result = check_foreign_keys(_dangling_db(), max_dangling_fraction=bound)
    assert result.passed and result.failures == []
    assert result.metadata[ORDERS]["user.id"]["dangling_fraction"] == pytest.approx(2 / 7)
    assert "within the bound" in result.message


def test_foreign_key_to_missing_table_and_bad_bound() -> None:
    tables = frames()
    db = Database(
        {
            USERS: Table(tables[USERS], {}, "keys", None),
            ORDERS: Table(tables[ORDERS], {"user.id": "ghosts"}, "type", None),
        }
    )
    failure = only_failure(check_foreign_keys(db))
    assert (failure["table"], failure["column"], failure["rows"]) == (ORDERS, "user.id", [])
    assert failure["detail"] == "parent table 'ghosts' is not in the database"
    with pytest.raises(ValueError):
        check_foreign_keys(db, max_dangling_fraction=1.5)


def test_unparsable_timestamp_string() -> None:
    tables = frames()
    tables[ORDERS]["update"] = ["2021-01-01", "2021-01-02 10:00", "not a date", None] * 2
    result = check_time_columns(make_db(tables))
    assert not result.passed
    assert [(f["table"], f["column"], rows(f)) for f in result.failures] == [
        (ORDERS, "update", [2, 6])
    ]
    assert result.failures[0]["detail"] == "2 value(s) do not parse as datetimes, e.g. ['not a date']"
    assert result.metadata[ORDERS]["n_unparsable"] == 2
    assert result.metadata[ORDERS]["n_null"] == 2


def test_out_of_range_timestamp() -> None:
    tables = frames()
    times = pd.Series(pd.date_range("2020-01-01", periods=5, freq="D"))
    times[0] = pd.Timestamp("1799-12-31")
    times[3] = pd.Timestamp("2200-01-01")
    tables[USERS]["signup time"] = times
    result = check_time_columns(make_db(tables))
    failure = only_failure(result)
    assert (failure["table"], failure["column"], rows(failure)) == (USERS, "signup time", [0, 3])
    assert "e.g. ['1799-12-31T00:00:00', '2200-01-01T00:00:00']" in failure["detail"]
    narrow = check_time_columns(make_db(frames()), max_ts=pd.Timestamp("2021-01-01 03:00", tz="UTC"))
    failure = only_failure(narrow)
    assert (failure["table"], failure["column"], rows(failure)) == (ORDERS, "update", [5, 6, 7])


def test_time_column_of_numbers() -> None:
    tables = frames()
    tables[USERS]["signup time"] = [2001, 2002, 2003, 2004, 2005]
    failure = only_failure(check_time_columns(make_db(tables)))
    assert (failure["table"], failure["column"]) == (USERS, "signup time")
    assert failure["detail"] == "time column has dtype int64, not datetimes"


def test_empty_table() -> None:
    tables = frames()
    tables[REVIEWS] = tables[REVIEWS].iloc[:0]
    result = check_not_empty(make_db(tables))
    failure = only_failure(result)
    assert (failure["table"], failure["column"], failure["rows"]) == (REVIEWS, None, [])
    assert result.metadata[REVIEWS] == {"n_rows": 0}
    assert result.message == f"not_empty: 1 failure(s): table {REVIEWS!r}: table has no rows"
    assert not check_not_empty(Database({})).passed


def test_mixed_type_column() -> None:
    tables = frames()
    tables[USERS]["naïve name"] = ["ann", "bob", "cy", 42, "eve"]
    result = check_column_types(make_db(tables))
    failure = only_failure(result)
    assert (failure["table"], failure["column"], rows(failure)) == (USERS, "naïve name", [3])
    assert failure["rows"][0]["values"]["naïve name"] == 42
    assert failure["detail"] == "1 value(s) are not str like the rest of the column, e.g. ['42 (int)']"
    assert result.severity == "WARN"
    assert result.metadata[USERS]["naïve name"] == {"dominant_type": "str", "checked": True, "n_other_type": 1}


def test_rows_are_positions_even_with_a_custom_index() -> None:
    tables = frames()
    tables[USERS]["keys"] = [0, 1, 1, 3, 4]
    tables[USERS].index = [10, 20, 30, 40, 50]
    failure = only_failure(check_primary_keys(make_db(tables)))
    assert rows(failure) == [1, 2]


def _labels() -> dict[str, pd.DataFrame]:
    def split(entities: list, targets: list) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user.id": entities,
                "time stamp": pd.date_range("2022-01-01", periods=len(entities), freq="D"),
                "target ü": targets,
            }
        )

    return {"train": split([0, 1, 2, 3], [0, 1, 0, 1]), "val": split([4, 0], [1.0, 0.0])}


def test_labels_clean() -> None:
    result = check_labels(_labels(), 5, "user.id", "time stamp", "target ü", "user-churn")
    assert result.passed, result.message
    assert result.metadata["val"] == {
        "n_rows": 2,
        "n_null_entity": 0,
        "n_missing_entity": 0,
        "n_null_target": 0,
        "n_null_time": 0,
    }


def test_labels_pointing_to_missing_entities_and_null_target() -> None:
    labels = _labels()
    labels["train"]["user.id"] = [0, 7, 2, -1]
    labels["val"]["target ü"] = [np.nan, 0.0]
    result = check_labels(labels, 5, "user.id", "time stamp", "target ü", "user-churn")
    assert not result.passed
    assert [(f["table"], f["column"], rows(f)) for f in result.failures] == [
        ("user-churn/train", "user.id", [1, 3]),
        ("user-churn/val", "target ü", [0]),
    ]
    assert result.failures[0]["detail"].startswith("2 entity id(s) outside 0..4")
    assert result.failures[0]["rows"][0]["values"]["user.id"] == 7
    assert "table 'user-churn/train', column 'user.id'" in result.message
    missing = check_labels(labels, 5, "user.id", "time stamp", "label", "user-churn")
    assert [(f["table"], f["column"]) for f in missing.failures] == [
        ("user-churn/train", "label"),
        ("user-churn/val", "label"),
    ]
