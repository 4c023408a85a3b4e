"""Getting a job's file: ``s3://``, ``https://`` and ``file://`` links, checked and size-limited.

``fetch(url, settings)`` is the one entry point; the modules beside it hold one scheme or one
safety concern each (``addresses`` for where links may lead, ``spool`` for temp files and the
size limit, ``urls`` for the checks every URL passes first).

``fetch`` is imported on first use: ``enqueue`` checks URLs with ``pgqueue.storage.urls`` in the
web app, which should not pay for the HTTP and S3 clients it never calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgqueue.storage.fetcher import fetch

__all__ = ["fetch"]


def __getattr__(name: str) -> Any:
    if name == "fetch":
        from pgqueue.storage.fetcher import fetch

        return fetch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
