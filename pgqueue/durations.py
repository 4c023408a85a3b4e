"""Durations as operators type them: ``30s``, ``5m``, ``2h``, ``7d``, or combined (``1h30m``)."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")


class InvalidDuration(ValueError):
    """Text that is not a duration such as 30s, 5m, 2h or 7d."""


MAX_SECONDS = 36500 * 86400


def parse_duration(text: str) -> timedelta:
    """``'2h'`` -> 2 hours. Raises ``InvalidDuration`` with an example of what is expected."""
    compact = text.strip().lower().replace(" ", "")
    if not _WHOLE.match(compact):
        raise InvalidDuration(
            f"{text!r} is not a duration: write a number and a unit (s, m, h, d, w), e.g. 30s, 5m, 2h, 7d"
        )
    seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(compact))
    if seconds > MAX_SECONDS:
        # Beyond this, "now minus the duration" leaves the years PostgreSQL and Python share.
        raise InvalidDuration(f"{text!r} is too long: at most {MAX_SECONDS // 86400}d (100 years)")
    return timedelta(seconds=seconds)


def describe(seconds: float | None) -> str:
    """A short human form of a number of seconds: ``'4m 12s'``, ``'3d 2h'``; ``'-'`` for None."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds > 0 else "0s"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(shown[:2])
