"""jobs by creation: an index on (created_at, id) for the web dashboard's pages

The dashboard lists jobs newest first and pages by keyset, ``(created_at, id) < (last shown)``.
Without this index every page of a million-row table sorts the whole table. Neither column is
ever updated, so the index costs one entry per insert and leaves updates free of it.

Revision ID: pgqueue_0007
Revises: pgqueue_0003
Create Date: 2026-12-08 00:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "pgqueue_0007"
down_revision: str | None = "pgqueue_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_extraction_jobs_created", "extraction_jobs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_extraction_jobs_created", table_name="extraction_jobs")
