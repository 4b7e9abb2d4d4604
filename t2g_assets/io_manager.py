"""One IO manager owns where and how every stage's value is stored, per partition.

Assets return their real objects (``TokenizedDatabase``, ``PretrainResult``,
``SyntheticGraph``, the score table, ...) and never build a path. A value is stored in
the folder of its asset and partition::

    <base>/<database>/<asset>/                          database-level assets
    <base>/<database>/tasks/<task@budget>/<asset>/      task-level assets

How is decided by the value's type, in one place: a type with ``save(folder)`` and a
``load(folder)`` classmethod stores itself; a DataFrame is a parquet file; anything else is
pickled. The folder also records which of these it holds, so loading needs no type hint. A
value is written next to its folder and swapped in whole, so a reader never sees half of one.
The method and pandas are imported only when a value is stored or loaded (not at start-up).
"""

from __future__ import annotations

import importlib
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

_KIND_FILE = "stored_as.txt"
_TABLE_FILE = "table.parquet"
_PICKLE_FILE = "value.pkl"


def partition_folder(base: Path, asset: str, partition: Any) -> Path:
    """The folder of one asset's value for one partition (a database, or database x task@budget)."""
    from t2g_lib.data.format import check_name

    keys = getattr(partition, "keys_by_dimension", None)
    if keys is None:
        return base / check_name(str(partition), "database") / asset
    return base / check_name(keys["database"], "database") / "tasks" / check_name(keys["task_budget"], "task") / asset


def _self_storing(obj: Any) -> bool:
    cls = type(obj)
    return callable(getattr(obj, "save", None)) and callable(getattr(cls, "load", None))


def save_value(obj: Any, folder: Path) -> None:
    """Write ``obj`` into ``folder`` (replacing what was there) in its type's own format."""
    import pandas as pd

    from t2g_lib.data.format import replace_dir

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        if _self_storing(obj):
            obj.save(tmp)
            kind = f"{type(obj).__module__}:{type(obj).__qualname__}"
        elif isinstance(obj, pd.DataFrame):
            obj.to_parquet(tmp / _TABLE_FILE, index=False)
            kind = "dataframe"
        else:
            (tmp / _PICKLE_FILE).write_bytes(pickle.dumps(obj))
            kind = "pickle"
        (tmp / _KIND_FILE).write_text(kind)
        replace_dir(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load_value(folder: Path) -> Any:
    """The value ``save_value`` wrote into ``folder``."""
    kind_file = folder / _KIND_FILE
    if not kind_file.is_file():
        raise FileNotFoundError(f"no stored value in {folder} (materialize its asset first)")
    kind = kind_file.read_text().strip()
    if kind == "dataframe":
        import pandas as pd


        return pd.read_parquet(folder / _TABLE_FILE)
    if kind == "pickle":
        return pickle.loads((folder / _PICKLE_FILE).read_bytes())
    module, _, name = kind.partition(":")
    cls: Any = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    return cls.load(folder)


class StageIOManager(ConfigurableIOManager):
    """Stores each asset's value per partition under ``base_dir`` (see the module docstring)."""

    base_dir: str = Field(description="Root folder of every stage's stored values.")

    def _folder(self, context: InputContext | OutputContext) -> Path:
        partition = context.asset_partition_key if context.has_asset_partitions else "_unpartitioned"
        return partition_folder(Path(self.base_dir), context.asset_key.to_python_identifier(), partition)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        folder = self._folder(context)
        save_value(obj, folder)
        metadata = {"stored_at": str(folder)}
        if callable(getattr(obj, "stored_metadata", None)):  # what only the written files can say
            metadata.update(obj.stored_metadata(folder))
        context.add_output_metadata(metadata)

    def load_input(self, context: InputContext) -> Any:
        return load_value(self._folder(context))
