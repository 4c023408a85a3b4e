"""``fetch``: a job's ``file_url`` in, a local path out, whatever the scheme."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO

from pgqueue.settings import Settings
from pgqueue.storage.local import local_path
from pgqueue.storage.s3 import download_s3
from pgqueue.storage.spool import spooled
from pgqueue.storage.urls import file_suffix, redact, scheme_of
from pgqueue.storage.web import download_web

_DOWNLOADERS: dict[str, Callable[[str, Settings, BinaryIO], None]] = {
    "s3": download_s3,
    "https": download_web,
    "http": download_web,
}


@contextmanager
def fetch(url: str, settings: Settings) -> Iterator[Path]:
    """Yield a local path holding the file at ``url``.

    ``file://`` yields the checked real path itself. Other schemes are streamed into a temp
    file that is removed when the block is left, however it is left. Every failure is a
    ``PermanentError`` or a ``TransientError`` from ``pgqueue.errors``.
    """
    scheme = scheme_of(url)
    if scheme == "file":
        yield local_path(url, settings)
        return
    download = _DOWNLOADERS[scheme]
    suffix = file_suffix(redact(url))
    with spooled(partial(download, url, settings), suffix) as path:
        yield path
