"""extraction jobs: the queue table, the worker registry, the wake-up trigger

Generated with ``alembic revision --autogenerate`` from ``pgqueue.models``, then reviewed:
- the foreign key to PyBase's ``records`` is added only where that table exists, so the
  migration also runs in a database of its own;
- a statement-level trigger sends one NOTIFY per INSERT statement (a COPY of 100,000 rows sends
  one), which wakes idle workers at once; NOTIFY is sent at commit, so a rolled-back enqueue
  wakes nobody.

Revision ID: pgqueue_0001
Revises:
Create Date: 2026-11-29 08:35:54.572133
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'pgqueue_0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ('pgqueue',)
depends_on: str | Sequence[str] | None = None

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION pgqueue_notify_new_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgqueue_jobs', '');
    RETURN NULL;
END;
$$
"""

# The retry plan, in one place for every statement that schedules a retry: the n-th retry
# (n counted from 0) waits base * factor^n seconds plus up to ``jitter`` of that at random,
# never more than ``cap``.
RETRY_DELAY_FUNCTION = """
CREATE OR REPLACE FUNCTION pgqueue_retry_delay(
    retries_so_far integer, base double precision, factor double precision,
    cap double precision, jitter double precision
) RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT make_interval(secs => least(
        cap, base * power(factor, retries_so_far) * (1 + random() * jitter)
    ))
$$
"""

NOTIFY_TRIGGER = """
CREATE TRIGGER extraction_jobs_notify
AFTER INSERT ON extraction_jobs
FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_notify_new_jobs()
"""


def _schema() -> str:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar()
    return str(schema)


def upgrade() -> None:
    op.create_table('pgqueue_workers',
    sa.Column('id', sa.UUID(as_uuid=False), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('hostname', sa.Text(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('version', sa.Text(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('extraction_jobs',
    sa.Column('id', sa.UUID(as_uuid=False), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('file_url', sa.String(length=2048), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('field_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('attachment_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('retry_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('max_retries', sa.Integer(), server_default=sa.text('3'), nullable=False),
    sa.Column('next_retry_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('error_history', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)", name='ck_extraction_jobs_finished_at'),
    sa.CheckConstraint("options IS NULL OR jsonb_typeof(options) = 'object'", name='ck_extraction_jobs_options_object'),
    sa.CheckConstraint("status <> 'processing' OR (worker_id IS NOT NULL AND started_at IS NOT NULL)", name='ck_extraction_jobs_processing_held'),
    sa.CheckConstraint("status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')", name='ck_extraction_jobs_status'),
    sa.CheckConstraint('file_size >= 0', name='ck_extraction_jobs_file_size'),
    sa.CheckConstraint('retry_count >= 0 AND max_retries >= 0', name='ck_extraction_jobs_retries'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_extraction_jobs_attachment', 'extraction_jobs', ['record_id', 'attachment_id'], unique=False)
    op.create_index('ix_extraction_jobs_file_url', 'extraction_jobs', ['file_url'], unique=False)
    op.create_index('ix_extraction_jobs_record', 'extraction_jobs', ['record_id'], unique=False)
    op.create_index('ix_extraction_jobs_status', 'extraction_jobs', ['status'], unique=False)
    op.create_index('ix_extraction_jobs_status_retry', 'extraction_jobs', ['status', 'next_retry_at'], unique=False)
    op.create_index('ux_extraction_jobs_active_attachment', 'extraction_jobs', ['record_id', 'attachment_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'processing') AND attachment_id IS NOT NULL"))
    if sa.inspect(op.get_bind()).has_table("records", schema=_schema()):
        op.create_foreign_key(
            "fk_extraction_jobs_record_id_records", "extraction_jobs", "records",
            ["record_id"], ["id"], ondelete="SET NULL",
        )
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)
    op.execute(RETRY_DELAY_FUNCTION)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS extraction_jobs_notify ON extraction_jobs")
    op.execute("DROP FUNCTION IF EXISTS pgqueue_notify_new_jobs()")
    op.execute(
        "DROP FUNCTION IF EXISTS pgqueue_retry_delay(integer, double precision, "
        "double precision, double precision, double precision)"
    )
    op.drop_index('ux_extraction_jobs_active_attachment', table_name='extraction_jobs', postgresql_where=sa.text("status IN ('pending', 'processing') AND attachment_id IS NOT NULL"))
    op.drop_index('ix_extraction_jobs_status_retry', table_name='extraction_jobs')
    op.drop_index('ix_extraction_jobs_status', table_name='extraction_jobs')
    op.drop_index('ix_extraction_jobs_record', table_name='extraction_jobs')
    op.drop_index('ix_extraction_jobs_file_url', table_name='extraction_jobs')
    op.drop_index('ix_extraction_jobs_attachment', table_name='extraction_jobs')
    op.drop_table('extraction_jobs')
    op.drop_table('pgqueue_workers')
