"""Settings-derived limits that built-in extractors read, set by the code that runs a job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractionContext:
    pdf_max_pages: int = 100
    werk24_token: str | None = None
    werk24_url: str | None = None
    time_budget: float = 300.0  # seconds the whole job may take; optional steps stay within it


_DEFAULT = ExtractionContext()
_current: ContextVar[ExtractionContext | None] = ContextVar("extraction_context", default=None)


def current() -> ExtractionContext:
    return _current.get() or _DEFAULT


@contextmanager
def using(context: ExtractionContext) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)
