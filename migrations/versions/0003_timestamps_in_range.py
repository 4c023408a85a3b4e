"""timestamps in range: every time column between 1900 and 9999, never infinite

PostgreSQL takes ``'infinity'`` and years past 9999 in a ``timestamptz``; Python cannot read
them. A row typed by hand with ``next_retry_at = 'infinity'`` made every worker fail when it
asked for the next due time (and ``'-infinity'`` broke the write-back's answer and the CLI), so
one bad row stopped the queue. The database now refuses such a row with this constraint's name.

Revision ID: pgqueue_0003
Revises: pgqueue_0002
Create Date: 2026-11-29 12:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from pgqueue.models import TIMES_IN_RANGE, TIMES_IN_RANGE_NAME

revision: str = "pgqueue_0003"
down_revision: str | None = "pgqueue_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_check_constraint(TIMES_IN_RANGE_NAME, "extraction_jobs", TIMES_IN_RANGE)


def downgrade() -> None:
    op.drop_constraint(TIMES_IN_RANGE_NAME, "extraction_jobs", type_="check")
