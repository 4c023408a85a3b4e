"""``fetch``: a job's ``file_url`` in, a local path out, whatever the scheme."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO

from pgqueue.settings import Settings
from pgqueue.storage.local import copy_local, local_name
from pgqueue.storage.s3 import download_s3
from pgqueue.storage.spool import spooled
from pgqueue.storage.urls import file_suffix, redact, scheme_of
from pgqueue.storage.web import download_web

_DOWNLOADERS: dict[str, Callable[[str, Settings, BinaryIO], None]] = {
    "file": copy_local,
    "s3": download_s3,
    "https": download_web,
    "http": download_web,
}


@contextmanager
def fetch(url: str, settings: Settings) -> Iterator[Path]:
    """Yield a local path holding the file at ``url``.

    Every scheme, ``file://`` included, lands in a private temp file, size-limited, that is
    removed when the block is left, however it is left: the extractor never opens the link's
    own path, which could change under it. Every failure is a ``PermanentError`` or a
    ``TransientError`` from ``pgqueue.errors``.
    """
    scheme = scheme_of(url)
    download = _DOWNLOADERS[scheme]
    suffix = file_suffix(redact(url))
    # A local file's copy keeps its name, as the extractor saw it when it read the file itself.
    name = local_name(url) if scheme == "file" else None
    with spooled(partial(download, url, settings), suffix, name) as path:
        yield path
