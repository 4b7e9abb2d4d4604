"""The real databases that ship inside packages this project installs, by name.

Each builder converts its package's tables into a RelBench dataset folder with forecast
tasks, offline; ``ensure_bundled`` builds one only when its folder is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from t2g_lib.data.completejourney import build_completejourney
from t2g_lib.data.errors import DatasetError
from t2g_lib.data.format import MANIFEST
from t2g_lib.data.lahman import build_lahman



@dataclass(frozen=True)
class Bundled:
    """How to build one bundled database, and the tasks its builder writes."""

    build: Callable[[Path], Path]
    tasks: tuple[str, ...]


BUNDLED: dict[str, Bundled] = {
    "lahman": Bundled(build_lahman, ("player-retention", "player-games")),  # baseball 1871-2024
    "completejourney": Bundled(build_completejourney, ("household-active", "household-spend")),  # grocery 2017
}


def build_bundled(name: str, data_dir: Path) -> Path:
    """(Re)build the bundled database ``name`` under ``data_dir``; its folder."""
    if name not in BUNDLED:
        raise DatasetError(f"no bundled database {name!r}; bundled: {', '.join(BUNDLED)}")
    return BUNDLED[name].build(Path(data_dir))


def ensure_bundled(name: str, data_dir: Path) -> Path:
    """The folder of bundled database ``name``, built first if it has no manifest yet."""
    folder = Path(data_dir) / name
    return folder if (folder / MANIFEST).is_file() else build_bundled(name, data_dir)
