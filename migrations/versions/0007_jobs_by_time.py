"""jobs by time: the indexes the web dashboard's pages read

- ``ix_extraction_jobs_created`` on ``(created_at, id)``: the jobs list, newest first, paged by
  keyset, ``(created_at, id) < (last shown)``. Without it every page of a million-row table
  sorts the whole table. Every status change writes a new row version, and each version gets
  an entry here (as in every other full index of the table): about three entries per job.
- ``ix_extraction_jobs_finished`` on ``completed_at``, only for finished rows: the overview's
  last-24-hours counts and the throughput view read it instead of every finished job. A job
  enters it once, when it finishes.

Revision ID: pgqueue_0007
Revises: pgqueue_0006
Create Date: 2026-12-08 00:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pgqueue_0007"
down_revision: str | None = "pgqueue_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_extraction_jobs_created", "extraction_jobs", ["created_at", "id"])
    op.create_index(
        "ix_extraction_jobs_finished",
        "extraction_jobs",
        ["completed_at"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_extraction_jobs_finished", table_name="extraction_jobs")
    op.drop_index("ix_extraction_jobs_created", table_name="extraction_jobs")
