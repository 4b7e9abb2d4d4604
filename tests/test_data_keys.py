"""Surrogate keys: composite and string keys become row indices; nothing is dropped."""

from __future__ import annotations

import pandas as pd
import pytest

from t2g_lib.data.errors import DatasetError
from t2g_lib.data.keys import ForeignKey, assign_surrogate_keys


def league() -> dict[str, pd.DataFrame]:
    teams = pd.DataFrame(
        {
            "year": [2001, 2000, 2000, 2001],
            "team": ["B", "A", "B", "A"],
            "season": pd.to_datetime(["2001-01-01", "2000-01-01", "2000-01-01", "2001-01-01"]),
        }
    )
    players = pd.DataFrame({"pid": ["x", "y", "z"], "Players_id": [7, 8, 9]})
    stints = pd.DataFrame(
        {
            "pid": ["x", "y", "q", None, "z"],
            "year": pd.array([2000, 2001, 2000, 2001, 2002], dtype="Int64"),
            "team": ["A", "B", "A", "A", "A"],
            "coach": ["y", "x", None, "z", "x"],
        }
    )
    return {"Teams": teams, "Players": players, "Stints": stints}


def test_composite_and_string_keys() -> None:
    src = league()
    out = assign_surrogate_keys(
        src,
        {"Teams": ["year", "team"], "Players": ["pid"]},
        [
            ForeignKey("Stints", ("pid",), "Players"),
            ForeignKey("Stints", ("coach",), "Players"),
            ForeignKey("Stints", ("year", "team"), "Teams"),
        ],
        time_cols={"Teams": "season"},
    )
    teams, players, stints = (out.tables[t] for t in ("Teams", "Players", "Stints"))
    # Teams sorted by time (stable) before numbering
    assert teams["season"].is_monotonic_increasing
    assert teams["Teams_id"].tolist() == [0, 1, 2, 3]
    assert list(zip(teams["year"], teams["team"])) == [
        (2000, "A"), (2000, "B"), (2001, "B"), (2001, "A"),
    ]
    # an existing column called Players_id is kept; the surrogate takes another name
    assert out.specs["Players"].pkey == "Players_id_2"
    assert players["Players_id"].tolist() == [7, 8, 9]
    assert out.specs["Stints"].pkey is None
    assert out.specs["Stints"].fkeys == {
        "Players_id_by_pid": "Players", "Players_id_by_coach": "Players", "Teams_id": "Teams",
    }
    assert stints["Players_id_by_pid"].tolist() == [0, 1, pd.NA, pd.NA, 2]
    assert stints["Players_id_by_coach"].tolist() == [1, 0, pd.NA, 2, 0]
    assert stints["Teams_id"].tolist() == [0, 2, 0, 3, pd.NA]
    assert str(stints["Teams_id"].dtype) == "Int64"
    # natural keys stay as data, row counts unchanged
    assert {"pid", "year", "team", "coach"} <= set(stints.columns)
    assert [len(out.tables[t]) for t in src] == [len(df) for df in src.values()]
    assert out.dangling[("Stints", "Players_id_by_pid")] == 1  # "q"
    assert out.missing[("Stints", "Players_id_by_pid")] == 1  # None
    assert out.dangling[("Stints", "Teams_id")] == 1  # (2002, A)
    # the inputs are not modified
    assert list(src["Teams"]["year"]) == [2001, 2000, 2000, 2001]
    assert "Teams_id" not in src["Teams"].columns


def test_duplicate_primary_key_is_reported() -> None:
    src = league()
    src["Players"].loc[2, "pid"] = "x"
    with pytest.raises(DatasetError, match="share a primary key") as err:
        assign_surrogate_keys(src, {"Players": ["pid"]}, [])
    assert (err.value.table, err.value.column) == ("Players", "pid")
    assert [r["pid"] for r in err.value.rows] == ["x", "x"]


def test_null_primary_key_is_reported() -> None:
    src = league()
    src["Teams"].loc[1, "team"] = None
    with pytest.raises(DatasetError, match="null primary key") as err:
        assign_surrogate_keys(src, {"Teams": ["year", "team"]}, [])
    assert (err.value.table, err.value.column) == ("Teams", "year, team")


def test_fkey_to_non_key_columns_and_errors() -> None:
    src = league()
    out = assign_surrogate_keys(
        src, {}, [ForeignKey("Stints", ("coach",), "Players", parent_columns=("pid",))]
    )
    assert out.specs["Players"].pkey == "Players_id_2"
    assert out.tables["Stints"]["Players_id"].tolist() == [1, 0, pd.NA, 2, 0]
    with pytest.raises(DatasetError, match="no primary key"):
        assign_surrogate_keys(src, {}, [ForeignKey("Stints", ("coach",), "Players")])
    with pytest.raises(DatasetError, match="unknown table 'Ghost'") as err:
        assign_surrogate_keys(src, {}, [ForeignKey("Stints", ("coach",), "Ghost")])
    assert (err.value.table, err.value.column) == ("Stints", "coach")
    with pytest.raises(DatasetError, match="not in table") as err:
        assign_surrogate_keys(src, {"Players": ["nope"]}, [])
    assert (err.value.table, err.value.column) == ("Players", "nope")
    with pytest.raises(DatasetError, match="2 columns"):
        assign_surrogate_keys(
            src, {"Players": ["pid"]}, [ForeignKey("Stints", ("year", "team"), "Players")]
        )
