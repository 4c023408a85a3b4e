"""The ``extraction_jobs`` table (the queue itself) and the worker registry.

``ExtractionJob`` follows the phase-01 spec column for column, with the deviations listed in
DESIGN.md: server-side defaults (a plain SQL ``INSERT`` is a complete job), ``JSONB`` for options
and results, a ``BigInteger`` file size, ``next_retry_at`` never NULL (a NULL would never become
due), and CHECK constraints that make the database agree with the lifecycle in
``pgqueue.lifecycle``. Added columns: ``worker_id`` (who holds a processing job),
``claim_token`` (which claim holds it), ``error_history`` (one entry per failed attempt) and
``superseded_by`` (a result replaced by a newer one, for retention). None is indexed: every index
on a hot column costs every update.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgqueue.lifecycle import ACTIVE_STATUSES, FINAL_STATUSES, ExtractionJobStatus
from pgqueue.priority import LOWEST_URGENCY, Priority

__all__ = ["Base", "ExtractionJob", "ExtractionJobStatus", "Worker", "metadata"]

metadata = MetaData()

# PyBase owns ``records``; this stub only lets the foreign key resolve. Migrations never create
# or alter it (see migrations/env.py ``include_object``).
records_stub = Table("records", metadata, Column("id", UUID(as_uuid=False), primary_key=True))


# Python's datetime reads years 1 to 9999, PostgreSQL's timestamptz far more, and infinity.
TIMES_IN_RANGE_NAME = "ck_extraction_jobs_times_in_range"
TIMES_IN_RANGE = " AND ".join(
    f"{column} BETWEEN '1900-01-01 00:00:00+00' AND '9999-01-01 00:00:00+00'"
    for column in ("created_at", "updated_at", "next_retry_at", "started_at", "completed_at")
)


# A job's attachment is (record_id, attachment_id); a job missing either is "unlinked" (a
# deleted record sets record_id NULL). Retention keys on these (see migration 0004).
PRUNABLE = "status IN ('failed', 'cancelled') OR superseded_by IS NOT NULL"
UNLINKED_COMPLETED = "status = 'completed' AND (record_id IS NULL OR attachment_id IS NULL)"


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Base(DeclarativeBase):
    """Declarative base giving every model the id and timestamps of PyBase's ``BaseModel``."""

    metadata = metadata

    id: Mapped[str] = mapped_column(
        UUID(as_uuid=False),
        primary_key=True,
        default=lambda: str(uuid.uuid4()),
        server_default=func.gen_random_uuid(),
        sort_order=-10,
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), sort_order=10
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now(),
        sort_order=10,
    )


class ExtractionJob(Base):
    """One file to extract: a row of the queue."""

    __tablename__ = "extraction_jobs"

    # File identification
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    file_url: Mapped[str] = mapped_column(String(2048), nullable=False, doc="S3/B2 file URL")
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    format: Mapped[str] = mapped_column(String(20), nullable=False, doc="pdf|dxf|ifc|step|werk24")

    # Optional linking to a record's attachment
    record_id: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False),
        ForeignKey("records.id", ondelete="SET NULL", name="fk_extraction_jobs_record_id_records"),
        nullable=True,
        doc="Record containing this attachment",
    )
    field_id: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False), nullable=True, doc="Attachment field ID in record"
    )
    attachment_id: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False), nullable=True, doc="Attachment object ID in field array"
    )

    # Job tracking
    status: Mapped[str] = mapped_column(
        String(20),
        default=ExtractionJobStatus.PENDING.value,
        server_default=ExtractionJobStatus.PENDING.value,
        nullable=False,
    )
    options: Mapped[Any] = mapped_column(
        JSONB, nullable=True, default=dict, server_default=text("'{}'::jsonb"),
        doc="Extraction options (JSON object)",
    )
    result: Mapped[Any] = mapped_column(JSONB, nullable=True, doc="Extraction result (JSON)")
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)

    # Retry logic
    retry_count: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0"), nullable=False
    )
    max_retries: Mapped[int] = mapped_column(
        Integer, default=3, server_default=text("3"), nullable=False
    )
    next_retry_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    # Timing
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    # Added for the lifecycle: who holds the job, and what went wrong on each attempt
    worker_id: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False), nullable=True, doc="Worker holding the job while processing"
    )
    error_history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb"),
        doc="One entry per failed attempt: at, attempt, error_type, message, worker_id",
    )
    claim_token: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False), nullable=True,
        doc="Stamped afresh by each claim; every write-back is fenced on it",
    )

    # Added for priorities (migration 0005): lower is more urgent; see pgqueue.priority.
    priority: Mapped[int] = mapped_column(
        SmallInteger, nullable=False, default=int(Priority.INTERACTIVE),
        server_default=text(str(int(Priority.INTERACTIVE))),
        doc="Lower is more urgent: interactive (10, the default), bulk (20)",
    )

    # Added for extractor versions (migration 0005): who wrote ``result``, so results of an
    # older extractor can be found and extracted again.
    extractor: Mapped[str | None] = mapped_column(
        Text, nullable=True, doc="The extractor that wrote the result (import path)")
    extractor_version: Mapped[str | None] = mapped_column(
        Text, nullable=True, doc="Its version (pgqueue.extractors.VERSIONS); 'unknown' before 0005")

    # Added for retention: set (by a trigger, migration 0004) on a completed job whose result a
    # newer completed job of the same attachment replaced; only those are pruned.
    superseded_by: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False), nullable=True,
        doc="The newer completed job of the same attachment that replaced this result",
    )

    __table_args__ = (
        # The spec's five indexes, names and columns unchanged.
        Index("ix_extraction_jobs_status", "status"),
        Index("ix_extraction_jobs_status_retry", "status", "next_retry_at"),
        Index("ix_extraction_jobs_file_url", "file_url"),
        Index("ix_extraction_jobs_record", "record_id"),
        Index("ix_extraction_jobs_attachment", "record_id", "attachment_id"),
        # At most one active job per attachment: enqueue relies on it (ON CONFLICT).
        Index(
            "ux_extraction_jobs_active_attachment",
            "record_id",
            "attachment_id",
            unique=True,
            # NULLs alike: an attachment without a record (or whose record was deleted) still
            # has one active job at most.
            postgresql_nulls_not_distinct=True,
            postgresql_where=text(
                f"status IN ({_sql_list(ACTIVE_STATUSES)}) AND attachment_id IS NOT NULL"
            ),
        ),
        # The web dashboard's newest-first pages by keyset, and its recent counts (pgqueue_0007).
        Index("ix_extraction_jobs_created", "created_at", "id"),
        Index(
            "ix_extraction_jobs_finished",
            "completed_at",
            postgresql_where=text("completed_at IS NOT NULL"),
        ),
        CheckConstraint(
            f"status IN ({_sql_list(tuple(s.value for s in ExtractionJobStatus))})",
            name="ck_extraction_jobs_status",
        ),
        CheckConstraint(
            "status <> 'processing' OR (worker_id IS NOT NULL AND started_at IS NOT NULL)",
            name="ck_extraction_jobs_processing_held",
        ),
        CheckConstraint(
            f"(status IN ({_sql_list(FINAL_STATUSES)})) = (completed_at IS NOT NULL)",
            name="ck_extraction_jobs_finished_at",
        ),
        CheckConstraint(
            "retry_count >= 0 AND max_retries >= 0", name="ck_extraction_jobs_retries"
        ),
        CheckConstraint("file_size >= 0", name="ck_extraction_jobs_file_size"),
        CheckConstraint(TIMES_IN_RANGE, name=TIMES_IN_RANGE_NAME),
        CheckConstraint(
            "superseded_by IS NULL OR status = 'completed'",
            name="ck_extraction_jobs_superseded_completed",
        ),
        CheckConstraint(f"priority BETWEEN 0 AND {LOWEST_URGENCY}", name="ck_extraction_jobs_priority"),
        # The claim's order: pending jobs, most urgent first, then longest due (migration 0005).
        Index(
            "ix_extraction_jobs_claim", "priority", "next_retry_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # Retention (migration 0004): what default pruning deletes, and the opt-in pruning of
        # completed jobs without an attachment. Latest results are in neither.
        Index("ix_extraction_jobs_prunable", "completed_at", postgresql_where=text(PRUNABLE)),
        Index(
            "ix_extraction_jobs_unlinked_completed", "completed_at",
            postgresql_where=text(UNLINKED_COMPLETED),
        ),
        CheckConstraint(
            "options IS NULL OR jsonb_typeof(options) = 'object'",
            name="ck_extraction_jobs_options_object",
        ),
    )

    def __repr__(self) -> str:
        return f"<ExtractionJob {self.id} ({self.status})>"

    @property
    def status_enum(self) -> ExtractionJobStatus:
        return ExtractionJobStatus(self.status)

    def get_options(self) -> dict[str, Any]:
        return _as_dict(self.options)

    def set_options(self, options: dict[str, Any]) -> None:
        self.options = _json_round_trip(options)

    def get_result(self) -> dict[str, Any]:
        return _as_dict(self.result)

    def set_result(self, result: dict[str, Any]) -> None:
        self.result = _json_round_trip(result)


class Worker(Base):
    """A live worker process. Its heartbeat proves it alive; rows of dead ones are removed."""

    __tablename__ = "pgqueue_workers"

    hostname: Mapped[str] = mapped_column(Text, nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    slots: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[str] = mapped_column(Text, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    formats: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"),
        doc="The formats this worker extracts: enqueue accepts what a live worker advertises",
    )


def _as_dict(value: Any) -> dict[str, Any]:
    """What the spec's ``get_*`` helpers promise: a dict, or ``{}`` for anything unreadable."""
    if isinstance(value, str):  # legacy rows or hand-written SQL may hold JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


def _json_round_trip(value: dict[str, Any]) -> dict[str, Any]:
    """Store exactly what JSON can hold, failing here rather than at flush time."""
    result: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    return result
