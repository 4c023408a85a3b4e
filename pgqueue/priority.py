"""Job priorities: a small integer per job, lower is more urgent, with named levels.

The column's default is ``interactive``, so a web app's plain INSERT needs no change; back-fills
(``enqueue_bulk``, ``pgqueue enqueue --manifest``) default to ``bulk``. Claims take the most
urgent due jobs first, then the longest due. A retry keeps its job's priority.
"""

from __future__ import annotations

from enum import IntEnum

LOWEST_URGENCY = 100  # the CHECK constraint's bound (migration 0005)


class Priority(IntEnum):
    INTERACTIVE = 10
    """A user is waiting: uploads from the web app. The column's default."""

    BULK = 20
    """Nobody waits on one job: back-fills and re-extraction."""


def priority_value(value: object) -> int | None:
    """A priority as the column stores it: a level, its name, or a whole number from 0 to 100.
    None if ``value`` is none of these."""
    if isinstance(value, str):
        level = Priority.__members__.get(value.strip().upper())
        return None if level is None else int(level)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return int(value) if 0 <= value <= LOWEST_URGENCY else None


def priority_names() -> str:
    return ", ".join(level.name.lower() for level in Priority)
