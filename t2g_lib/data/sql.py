"""SQL identifier quoting: table and column names are user data (spaces, dots, keywords)."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier (DuckDB and SQLite both use double quotes).

    Every identifier t2g puts into SQL goes through here: a table called ``order`` or a
    column called ``my col`` must never be spliced in raw.
    """
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'

