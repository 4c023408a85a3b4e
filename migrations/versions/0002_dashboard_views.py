"""dashboard views: status by format, queue lag, throughput, durations, failures, live workers

Read-only views over ``extraction_jobs`` and ``pgqueue_workers`` for SQL dashboards (Grafana,
Metabase, psql) and for ``pgqueue status``. They live in the migration's schema, beside the
tables (views bind to the tables they name when created). They are not in the models: Alembic's
autogenerate does not reflect views, and ``migrations/env.py`` leaves them out all the same.

The 24-hour views filter on ``completed_at``, which has no index on purpose (an index on a hot
column costs every write-back); they scan the finished rows kept by the retention setting.

Revision ID: pgqueue_0002
Revises: pgqueue_0001
Create Date: 2026-11-29 14:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "pgqueue_0002"
down_revision: str | None = "pgqueue_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_BY_FORMAT = """
CREATE VIEW pgqueue_status_by_format AS
SELECT format, status, count(*) AS jobs
FROM extraction_jobs
GROUP BY format, status
"""

# Always exactly one row, also when nothing is due (then lag_seconds is 0).
QUEUE_LAG = """
CREATE VIEW pgqueue_queue_lag AS
SELECT count(*) AS due_jobs,
       min(next_retry_at) AS oldest_due_at,
       coalesce(extract(epoch FROM now() - min(next_retry_at)), 0)::double precision AS lag_seconds
FROM extraction_jobs
WHERE status = 'pending' AND next_retry_at <= now()
"""

THROUGHPUT_PER_MINUTE = """
CREATE VIEW pgqueue_throughput_per_minute AS
SELECT date_trunc('minute', completed_at) AS minute,
       format,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM extraction_jobs
WHERE status IN ('completed', 'failed') AND completed_at >= now() - interval '24 hours'
GROUP BY 1, 2
"""

# started_at is set by every claim, so this is the duration of the successful attempt.
DURATION_PERCENTILES = """
CREATE VIEW pgqueue_duration_percentiles AS
SELECT format,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY seconds) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) AS p99,
       count(*) AS jobs
FROM (
    SELECT format, extract(epoch FROM completed_at - started_at)::double precision AS seconds
    FROM extraction_jobs
    WHERE status = 'completed' AND started_at IS NOT NULL
      AND completed_at >= now() - interval '24 hours'
) AS finished
GROUP BY format
"""

# Messages are normalised so that the same fault on different files counts once: ids, links,
# quoted names and numbers are replaced by placeholders, whitespace is collapsed, and the first
# 100 characters are kept.
FAILURE_REASONS = r"""
CREATE VIEW pgqueue_failure_reasons AS
WITH last_error AS (
    SELECT coalesce(error_history -> -1 ->> 'error_type', 'Unknown') AS error_type,
           coalesce(error_history -> -1 ->> 'message', error_message, '') AS message,
           completed_at
    FROM extraction_jobs
    WHERE status = 'failed'
)
SELECT error_type,
       left(btrim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
           message,
           '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'gi'),
           '[a-z][a-z0-9+.-]*://[^[:space:]]*', '<url>', 'gi'),
           '''[^'']*''|"[^"]*"', '<name>', 'g'),
           '[0-9]+', 'N', 'g'),
           '\s+', ' ', 'g')), 100) AS message_prefix,
       count(*) AS jobs,
       max(completed_at) AS last_seen
FROM last_error
GROUP BY 1, 2
"""

# Registered workers. A worker that stopped heartbeating stays here until the maintenance
# leader removes it (after the worker timeout): heartbeat_age_seconds shows it.
LIVE_WORKERS = """
CREATE VIEW pgqueue_live_workers AS
WITH held AS (
    SELECT worker_id, count(*) AS jobs_held, array_agg(id ORDER BY started_at) AS held_job_ids
    FROM extraction_jobs
    WHERE status = 'processing'
    GROUP BY worker_id
)
SELECT worker.id AS worker_id,
       worker.hostname,
       worker.pid,
       worker.slots,
       worker.version,
       worker.created_at AS started_at,
       worker.heartbeat_at,
       extract(epoch FROM now() - worker.heartbeat_at)::double precision AS heartbeat_age_seconds,
       coalesce(held.jobs_held, 0) AS jobs_held,
       coalesce(held.held_job_ids, ARRAY[]::uuid[]) AS held_job_ids
FROM pgqueue_workers AS worker
LEFT JOIN held ON held.worker_id = worker.id
"""

CREATE = (
    STATUS_BY_FORMAT, QUEUE_LAG, THROUGHPUT_PER_MINUTE, DURATION_PERCENTILES, FAILURE_REASONS,
    LIVE_WORKERS,
)

DROP = (
    "DROP VIEW IF EXISTS pgqueue_live_workers",
    "DROP VIEW IF EXISTS pgqueue_failure_reasons",
    "DROP VIEW IF EXISTS pgqueue_duration_percentiles",
    "DROP VIEW IF EXISTS pgqueue_throughput_per_minute",
    "DROP VIEW IF EXISTS pgqueue_queue_lag",
    "DROP VIEW IF EXISTS pgqueue_status_by_format",
)


def upgrade() -> None:
    for statement in CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP:
        op.execute(statement)
