"""Table tests that loop over their rows (one setup for the whole table, where each
parametrized case would pay for a server or a tree of its own)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def row(name: str) -> Iterator[None]:
    """One row of a table: a failure raised inside names the row in its report."""
    try:
        yield
    except BaseException as exc:
        exc.add_note(f"in table row: {name}")
        raise
