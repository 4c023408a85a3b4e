"""Getting a job's file: ``s3://``, ``https://`` and ``file://`` links, checked and size-limited.

``fetch(url, settings)`` is the one entry point; the modules beside it hold one scheme or one
safety concern each (``addresses`` for where links may lead, ``spool`` for temp files and the
size limit).
"""

from pgqueue.storage.fetcher import fetch

__all__ = ["fetch"]
