"""priority: uploads before the back-fill; extractor versions with every result

``priority`` is a small integer, lower more urgent (``pgqueue.priority``: interactive 10, bulk
20). Its default is interactive, so the web app's plain INSERTs need no change and every
existing job becomes interactive. Claims order due jobs by priority, then ``next_retry_at``:
``ix_extraction_jobs_claim`` holds only pending jobs in that order, so a claim reads about as
many index entries as it takes, however many jobs are due. The spec's ``(status,
next_retry_at)`` index stays. The view ``pgqueue_queue_lag_by_priority`` shows due jobs and
lag per priority (one row per priority that has due jobs).

``extractor`` and ``extractor_version`` record which extractor wrote a job's result (set by the
write-back). Results already stored get the job's format and version ``unknown``.

Revision ID: pgqueue_0005
Revises: pgqueue_0004
Create Date: 2026-12-08 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pgqueue_0005"
down_revision: str | None = "pgqueue_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


QUEUE_LAG_BY_PRIORITY = """
CREATE VIEW pgqueue_queue_lag_by_priority AS
SELECT priority,
       CASE priority WHEN 10 THEN 'interactive' WHEN 20 THEN 'bulk' ELSE priority::text END AS level,
       count(*) AS due_jobs,
       min(next_retry_at) AS oldest_due_at,
       extract(epoch FROM now() - min(next_retry_at))::double precision AS lag_seconds
FROM extraction_jobs
WHERE status = 'pending' AND next_retry_at <= now()
GROUP BY priority
"""


# Which extractor versions wrote the results PyBase reads (the latest of each attachment),
# per format: how much a re-extraction after a version bump has left to do.
RESULTS_BY_EXTRACTOR_VERSION = """
CREATE VIEW pgqueue_results_by_extractor_version AS
SELECT format, extractor, extractor_version, count(*) AS latest_results,
       max(completed_at) AS last_completed_at
FROM extraction_jobs
WHERE status = 'completed' AND superseded_by IS NULL
GROUP BY format, extractor, extractor_version
"""


def upgrade() -> None:
    op.add_column("extraction_jobs", sa.Column("extractor", sa.Text(), nullable=True))
    op.add_column("extraction_jobs", sa.Column("extractor_version", sa.Text(), nullable=True))
    op.execute("UPDATE extraction_jobs SET extractor = format, extractor_version = 'unknown' "
               "WHERE status = 'completed'")
    op.add_column("extraction_jobs", sa.Column(
        "priority", sa.SmallInteger(), server_default=sa.text("10"), nullable=False))
    op.create_check_constraint(
        "ck_extraction_jobs_priority", "extraction_jobs", "priority BETWEEN 0 AND 100")
    op.create_index("ix_extraction_jobs_claim", "extraction_jobs", ["priority", "next_retry_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.execute(QUEUE_LAG_BY_PRIORITY)
    op.execute(RESULTS_BY_EXTRACTOR_VERSION)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS pgqueue_results_by_extractor_version")
    op.execute("DROP VIEW IF EXISTS pgqueue_queue_lag_by_priority")
    op.drop_index("ix_extraction_jobs_claim", table_name="extraction_jobs")
    op.drop_constraint("ck_extraction_jobs_priority", "extraction_jobs", type_="check")
    op.drop_column("extraction_jobs", "priority")
    op.drop_column("extraction_jobs", "extractor_version")
    op.drop_column("extraction_jobs", "extractor")
