"""Errors a job can end with, and how each one is treated.

Every failure of a job is classified as *permanent* (the job fails at once: retrying cannot
help) or *transient* (the job is retried with backoff until ``max_retries`` is used up).
Anything that is not a ``JobError`` is unknown and treated as transient, because a bug in a
library or a passing fault is more likely than a file that can never be read.

The class name is what lands in the error history (``error_type``), so names are part of the
public contract: rename with care.
"""

from __future__ import annotations


class JobError(Exception):
    """Base of every classified job failure."""

    retryable: bool = True

    @property
    def error_type(self) -> str:
        return type(self).__name__


class PermanentError(JobError):
    """Retrying cannot help: fail the job now."""

    retryable = False


class TransientError(JobError):
    """A passing fault: retry the job later."""

    retryable = True


# --- permanent -------------------------------------------------------------------------------


class UnsupportedFormat(PermanentError):
    """No extractor is registered for the job's format, or the file is of a format we refuse."""


class InvalidOptions(PermanentError):
    """The job's options are not valid for its format."""


class CorruptFile(PermanentError):
    """The file is damaged, truncated, empty, or not of the format it claims."""


class FileTooLarge(PermanentError):
    """The file is larger than a configured limit (bytes, pages)."""


class NotConfigured(PermanentError):
    """The job needs a credential or setting that this worker does not have."""


class FileNotFound(PermanentError):
    """The file does not exist at its URL."""


class AccessDenied(PermanentError):
    """The storage refused access, or the URL points somewhere this worker may not go."""


class InvalidFileUrl(PermanentError):
    """The file URL is malformed, of an unsupported scheme, or outside the allowed places."""


class MemoryLimitExceeded(PermanentError):
    """The extraction used more memory than the configured limit."""


class ResultNotStorable(PermanentError):
    """The extractor's result cannot be stored (not JSON, or too large)."""


# --- transient -------------------------------------------------------------------------------


class StorageUnavailable(TransientError):
    """The storage or network failed in a way that may pass."""


class ServiceUnavailable(TransientError):
    """A remote extraction service (Werk24) could not be reached, or failed in a way that may pass."""


class ExtractionTimeout(TransientError):
    """The extraction ran past its wall-clock limit."""


class ExtractorCrashed(TransientError):
    """The child process running the extraction died (signal, segfault, os._exit)."""


class WorkerLost(TransientError):
    """The worker holding the job stopped heartbeating; the job was rescued."""


def classify(exc: BaseException) -> tuple[bool, str, str]:
    """Return ``(retryable, error_type, message)`` for any exception."""
    if isinstance(exc, JobError):
        return exc.retryable, exc.error_type, str(exc) or exc.error_type
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return True, type(exc).__name__, message
