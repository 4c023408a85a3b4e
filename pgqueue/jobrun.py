"""Run one job from its URL to a stored-ready outcome: fetch, extract, serialise.

``run_job`` is what a child process (or, with ``isolation=inline``, a thread) executes. It
never raises: every failure becomes an ``Outcome`` with its classification, so the code that
writes outcomes back has one shape to deal with.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgqueue import extractors
from pgqueue.errors import ResultNotStorable, classify
from pgqueue.extractors.context import ExtractionContext, using
from pgqueue.settings import Settings
from pgqueue.storage.urls import conceal

MAX_RESULT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class JobInput:
    """What a job run needs from its row."""

    id: str
    file_url: str
    format: str
    options: Mapping[str, Any] = field(default_factory=dict)
    file_size: int = 0


@dataclass(frozen=True)
class Outcome:
    """How one run of a job ended. ``result_json`` is set exactly when it succeeded."""

    job_id: str
    result_json: str | None = None
    retryable: bool = False
    error_type: str | None = None
    error_message: str | None = None
    duration: float = 0.0
    extractor: str | None = None
    """On success: the extractor's name and version (``extractors.identity``)."""
    extractor_version: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.result_json is not None

    @classmethod
    def failure(
        cls, job_id: str, exc: BaseException, duration: float = 0.0, url: str = ""
    ) -> Outcome:
        """The failed outcome of ``exc``; with the job's ``url``, its secrets are masked.

        The message lands in the row and the logs: no secret of the link may ride along,
        whichever library wrote it. Masked before it is cut, so no half secret remains.
        """
        retryable, error_type, message = classify(exc)
        message = conceal(message, url) if url else message
        return cls(job_id, None, retryable, error_type, message[:4000], duration)


def run_job(job: JobInput, settings: Settings) -> Outcome:
    started = time.monotonic()
    try:
        extract = extractors.get(job.format)
        context = ExtractionContext(
            pdf_max_pages=settings.pdf_max_pages,
            werk24_token=settings.werk24_token,
            werk24_url=settings.werk24_url,
            time_budget=settings.timeout_for(job.format),
        )
        options = dict(job.options or {})
        from pgqueue.storage import fetch  # imported here: the parent never needs it

        with fetch(job.file_url, settings) as path, using(context):
            result = extract(path, options)
        name, version = extractors.identity(job.format)
        return Outcome(job.id, to_json(result), duration=time.monotonic() - started,
                       extractor=name, extractor_version=version)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return Outcome.failure(job.id, exc, time.monotonic() - started, url=job.file_url)


def to_json(result: Any) -> str:
    """Serialise a result as PostgreSQL ``jsonb`` accepts it, or raise ``ResultNotStorable``."""
    if not isinstance(result, dict):
        raise ResultNotStorable(f"extractor returned {type(result).__name__}, not a dict")
    try:
        text = json.dumps(_clean(result), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ResultNotStorable(f"result is not JSON: {exc}") from None
    if len(text) > MAX_RESULT_BYTES:
        raise ResultNotStorable(f"result is {len(text)} bytes; the limit is {MAX_RESULT_BYTES}")
    return text


def _clean(value: Any) -> Any:
    """Drop what jsonb refuses but Python allows: NUL characters in strings, non-str keys."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {str(_clean(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultNotStorable(f"result holds a non-finite number ({value})")
    return value
