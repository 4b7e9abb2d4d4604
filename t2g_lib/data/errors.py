"""The one error type for bad input data, so callers can show *where* the data is wrong."""

from __future__ import annotations

from typing import Any, Optional, Sequence

MAX_EXAMPLES = 5


class DatasetError(ValueError):
    """A dataset (folder, manifest, table or column) violates the t2g/RelBench contract.

    Carries the offending ``table``, ``column`` and up to five example ``rows`` (row dicts
    or row indices) as attributes, and names all three in the message, so an asset check
    or a CLI can point the user at the exact place to fix.
    """

    def __init__(
        self,
        problem: str,
        *,
        table: Optional[str] = None,
        column: Optional[str] = None,
        rows: Sequence[Any] = (),
    ) -> None:
        self.table = table
        self.column = column
        self.rows = list(rows)[:MAX_EXAMPLES]
        self.problem = problem
        where = []
        if table is not None:
            where.append(f"table {table!r}")
        if column is not None:
            where.append(f"column {column!r}")
        msg = ", ".join(where)
        msg = f"{msg}: {problem}" if msg else problem
        if self.rows:
            msg += f"; examples: {self.rows!r}"
        super().__init__(msg)
