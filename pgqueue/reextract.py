"""Re-extraction: new ``bulk`` jobs for the results an older extractor version wrote.

When an extractor is corrected, its version in ``pgqueue.extractors.VERSIONS`` is bumped; the
latest results of attachments written by an older version (or before versions were recorded:
"unknown") are extracted again. Attachments that already have an active job are skipped, so a
second run enqueues nothing new. The old result stays the attachment's latest (and readable)
until the new job completes and supersedes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgqueue import extractors, sql
from pgqueue.priority import Priority

FIRST_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Reextraction:
    outdated: int
    """Latest results of the format written by a version older than ``before_version``."""
    enqueued: int
    """New bulk jobs (on a dry run: that would be enqueued)."""
    before_version: int
    dry_run: bool

    @property
    def already_active(self) -> int:
        """Outdated results whose attachment already has an active job (not enqueued again)."""
        return self.outdated - self.enqueued


class InvalidReextraction(ValueError):
    """Arguments that cannot select results (unknown format, no version to compare with)."""


def current_version(fmt: str) -> int:
    """The built-in extractor's version of ``fmt``, the default bound of a re-extraction."""
    version = extractors.VERSIONS.get(fmt)
    if version is None or not version.isdigit():
        known = ", ".join(sorted(extractors.VERSIONS))
        raise InvalidReextraction(f"no built-in extractor version for format {fmt!r}; known: {known}")
    return int(version)


def reextract(
    conn: psycopg.Connection[Any],
    format: str,
    before_version: int | None = None,
    since: timedelta | None = None,
    until: timedelta | None = None,
    dry_run: bool = False,
    batch: int = 1000,
    advance: Callable[[int], None] = lambda done: None,
) -> Reextraction:
    """Enqueue bulk jobs for the latest results of ``format`` written by a version older than
    ``before_version`` (default: the current one) that finished within ``since`` ago and more
    than ``until`` ago. ``conn`` is an autocommit connection; each batch commits (a dry run
    rolls every batch back). ``advance`` gets the number of results looked at so far."""
    bound = current_version(format) if before_version is None else before_version
    params: dict[str, Any] = {
        "format": format, "before_version": bound, "batch": batch, "priority": int(Priority.BULK),
        "since_seconds": since.total_seconds() if since is not None else None,
        "until_seconds": until.total_seconds() if until is not None else None,
        "after_id": FIRST_ID,
    }
    outdated = enqueued = 0
    while True:
        with conn.transaction(force_rollback=dry_run), conn.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(sql.JOB_REEXTRACT_OUTDATED.encode(), params).fetchone()
        assert row is not None
        if row["last_id"] is None:
            return Reextraction(outdated, enqueued, bound, dry_run)
        outdated += int(row["picked"])
        enqueued += int(row["enqueued"])
        params["after_id"] = row["last_id"]
        advance(outdated)
