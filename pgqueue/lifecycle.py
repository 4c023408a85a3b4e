"""The job lifecycle, written once. The CHECK constraints in ``pgqueue.models``, the fenced
statements in ``pgqueue.sql`` and the tests all follow this table.

::

             claim                    success
  pending ─────────────▶ processing ─────────────▶ completed
    ▲  │                   │   │
    │  │ cancel            │   │ permanent error, or retries used up
    │  ▼                   │   ▼
    │ cancelled ◀──cancel──┘  failed
    │                      │
    └──── transient error, worker lost, or shutdown hand-back
"""

from __future__ import annotations

from enum import Enum


class ExtractionJobStatus(str, Enum):  # noqa: UP042 - as the spec defines it
    """Status of an extraction job. Comments say who moves a job in and out."""

    PENDING = "pending"
    """Waiting until ``next_retry_at``. In: enqueue, a retry, a rescue, a shutdown hand-back,
    an operator's retry. Out: a worker's claim, or a cancel."""

    PROCESSING = "processing"
    """Held by ``worker_id`` since ``started_at``, under the ``claim_token`` its claim stamped.
    Out: the write-back of that claim (fenced on the token), the rescuer (worker lost), a
    hand-back by the holding worker, or a cancel. The last three clear the token."""

    COMPLETED = "completed"
    """Final: ``result`` holds what was extracted."""

    FAILED = "failed"
    """Final: a permanent error, or ``max_retries`` retries used up. ``error_message`` says why.
    An operator's retry moves it back to pending."""

    CANCELLED = "cancelled"
    """Final: cancelled by the web app or an operator."""


ACTIVE_STATUSES: tuple[str, ...] = (
    ExtractionJobStatus.PENDING.value,
    ExtractionJobStatus.PROCESSING.value,
)
FINAL_STATUSES: tuple[str, ...] = (
    ExtractionJobStatus.COMPLETED.value,
    ExtractionJobStatus.FAILED.value,
    ExtractionJobStatus.CANCELLED.value,
)

# Every allowed move, by what makes it. Tests walk this table against the database.
TRANSITIONS: dict[tuple[ExtractionJobStatus, ExtractionJobStatus], str] = {
    (ExtractionJobStatus.PENDING, ExtractionJobStatus.PROCESSING): "claim",
    (ExtractionJobStatus.PENDING, ExtractionJobStatus.CANCELLED): "cancel",
    (ExtractionJobStatus.PROCESSING, ExtractionJobStatus.COMPLETED): "success",
    (ExtractionJobStatus.PROCESSING, ExtractionJobStatus.FAILED): "permanent error or retries used up",
    (ExtractionJobStatus.PROCESSING, ExtractionJobStatus.PENDING): "retry, rescue or hand-back",
    (ExtractionJobStatus.PROCESSING, ExtractionJobStatus.CANCELLED): "cancel",
    (ExtractionJobStatus.FAILED, ExtractionJobStatus.PENDING): "operator retry",
    (ExtractionJobStatus.CANCELLED, ExtractionJobStatus.PENDING): "operator retry",
}

