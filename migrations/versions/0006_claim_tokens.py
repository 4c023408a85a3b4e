"""claim tokens, one active job per attachment with NULLs alike, formats in the registry

- ``extraction_jobs.claim_token``: each claim stamps a fresh token, and every write-back and
  hand-back is fenced on it. A worker may claim the same job again (after a retry, a rescue, a
  cancel and an operator's retry), so its identity cannot tell an earlier attempt's late
  outcome from the current one; a token per claim can. Not indexed: statements find rows by
  id, and an index here would cost every claim.
- ``ux_extraction_jobs_active_attachment`` treats NULLs as equal (PostgreSQL 15+): an
  attachment without a record, or one whose record was deleted (``ON DELETE SET NULL``), had
  room for any number of active jobs.
- ``pgqueue_workers.formats``: the formats a live worker can extract, so a web app accepts a
  format registered only in the workers.

Revision ID: pgqueue_0006
Revises: pgqueue_0005
Create Date: 2026-12-08 00:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "pgqueue_0006"
down_revision: str | None = "pgqueue_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ux_extraction_jobs_active_attachment"
ACTIVE = sa.text("status IN ('pending', 'processing') AND attachment_id IS NOT NULL")


def upgrade() -> None:
    version = op.get_bind().exec_driver_sql("SHOW server_version_num").scalar()
    if int(str(version)) < 150000:
        raise RuntimeError("pgqueue needs PostgreSQL 15 or later (unique indexes with NULLS NOT DISTINCT)")
    op.add_column("extraction_jobs", sa.Column("claim_token", sa.UUID(as_uuid=False), nullable=True))
    # Jobs running across the upgrade: their workers fence on worker_id until they restart.
    op.execute("UPDATE extraction_jobs SET claim_token = gen_random_uuid() WHERE status = 'processing'")
    op.add_column(
        "pgqueue_workers",
        sa.Column("formats", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"),
                  nullable=False),
    )
    op.drop_index(INDEX, table_name="extraction_jobs", postgresql_where=ACTIVE)
    op.create_index(
        INDEX, "extraction_jobs", ["record_id", "attachment_id"], unique=True,
        postgresql_where=ACTIVE, postgresql_nulls_not_distinct=True,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="extraction_jobs", postgresql_where=ACTIVE)
    op.create_index(INDEX, "extraction_jobs", ["record_id", "attachment_id"], unique=True,
                    postgresql_where=ACTIVE)
    op.drop_column("pgqueue_workers", "formats")
    op.drop_column("extraction_jobs", "claim_token")
