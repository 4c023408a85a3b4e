"""pgqueue: a PostgreSQL-native job queue for file-extraction jobs. The table is the queue."""

from __future__ import annotations

__version__ = "0.1.0"

from pgqueue.control import (
    JobChange,
    JobInfo,
    cancel,
    cancel_async,
    get_job,
    get_job_async,
    retry,
    retry_async,
)
from pgqueue.enqueue import (
    BulkResult,
    EnqueuedJob,
    InvalidJob,
    JobRequest,
    enqueue,
    enqueue_async,
    enqueue_bulk,
    enqueue_bulk_async,
)
from pgqueue.lifecycle import ExtractionJobStatus
from pgqueue.priority import Priority
from pgqueue.reextract import Reextraction, reextract
from pgqueue.settings import Settings, load_settings

__all__ = [
    "BulkResult",
    "EnqueuedJob",
    "ExtractionJobStatus",
    "InvalidJob",
    "JobChange",
    "JobInfo",
    "JobRequest",
    "Priority",
    "Reextraction",
    "Settings",
    "__version__",
    "cancel",
    "cancel_async",
    "enqueue",
    "enqueue_async",
    "enqueue_bulk",
    "enqueue_bulk_async",
    "get_job",
    "get_job_async",
    "load_settings",
    "reextract",
    "retry",
    "retry_async",
]
