"""Downloads land in a private temp file, under a size limit, and the file never outlives its use.

The temp file lives in the system temp folder (``TMPDIR``), so an operator can point large
downloads at a large disk without a setting of ours.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pgqueue.errors import FileTooLarge

TEMP_PREFIX = "pgqueue-fetch-"
_SIZE_SETTING = "PGQUEUE_MAX_FILE_SIZE"


@contextmanager
def spooled(
    write: Callable[[BinaryIO], None], suffix: str = "", name: str | None = None
) -> Iterator[Path]:
    """Run ``write`` into a new temp file, yield its path, and remove it however we leave.

    With ``name`` the file keeps that name, in a private folder of its own (extractors and
    plug-ins may report or key on a file's name); otherwise it gets a random one.
    The file is removed on success, on an exception from ``write`` or from the caller's block,
    and when the generator is closed without being resumed (GeneratorExit).
    """
    folder, descriptor, path = _named(name) if name else (None, -1, Path())
    if folder is None:
        descriptor, created = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix)
        path = Path(created)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        yield path
    finally:
        path.unlink(missing_ok=True)
        if folder is not None:
            folder.rmdir()


def _named(name: str) -> tuple[Path | None, int, Path]:
    """A new file called ``name`` in a new private folder; no folder where the name cannot be."""
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        path = folder / name
        return folder, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
    except OSError:  # a name this file system refuses: a random one will do
        folder.rmdir()
        return None, -1, Path()


def check_announced_size(size: int | None, limit: int, url: str) -> None:
    """Refuse before downloading when the server already says the file is too large."""
    if size is not None and size > limit:
        raise FileTooLarge(
            f"{url}: the file is {describe_size(size)}, over the limit of "
            f"{describe_size(limit)} ({_SIZE_SETTING})"
        )


def copy_limited(
    chunks: Iterable[bytes | memoryview], destination: BinaryIO, limit: int, url: str
) -> int:
    """Write ``chunks`` to ``destination``, stopping as soon as more than ``limit`` bytes came.

    Counting matters even after the announced size was checked: a server can announce less
    than it sends, or announce nothing at all.
    """
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > limit:
            raise FileTooLarge(
                f"{url}: more than {describe_size(limit)} received, over the limit "
                f"({_SIZE_SETTING}); the download was stopped"
            )
        destination.write(chunk)
    return written


def describe_size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size} bytes"
    return f"{size} bytes ({size / (1024 * 1024):.1f} MiB)"
