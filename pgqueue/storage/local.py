"""``file://`` links, limited to the folders in ``settings.file_roots``.

The path is percent-decoded, as ``Path.as_uri()`` writes it (``file:///data/plate%201.pdf``);
a literal space also works. Only ``file:///path`` and ``file://localhost/path`` are accepted.

The path must lie below a root as written (the root's own spelling or its real path). The file
is opened once, relative to a handle on the root, with no symlink followed in any component
(``pgqueue.storage.beneath``); its type and size are read from that handle, and its bytes are
copied from it, under the size limit, into the job's private temp file. The extractor reads
the copy: nothing that happens to the names below the root afterwards reaches the job.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from pgqueue.errors import (
    AccessDenied,
    FileNotFound,
    InvalidFileUrl,
    NotConfigured,
    StorageUnavailable,
)
from pgqueue.settings import Settings
from pgqueue.storage.beneath import SymlinkRefused, open_beneath
from pgqueue.storage.spool import check_announced_size, copy_limited

CHUNK_SIZE = 1024 * 1024
_ROOTS_SETTING = "PGQUEUE_FILE_ROOTS"
_NOT_FOUND = frozenset({errno.ENOENT, errno.ENOTDIR})


def copy_local(url: str, settings: Settings, destination: BinaryIO) -> None:
    """Copy the file a ``file://`` URL names into ``destination``, or raise a job error."""
    descriptor = open_local(url, settings)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise InvalidFileUrl(f"{url}: not a regular file")
        check_announced_size(status.st_size, settings.max_file_size, url)
        # The file may still grow through this handle after fstat: the copy counts again.
        copy_limited(_chunks(descriptor, url), destination, settings.max_file_size, url)
    finally:
        os.close(descriptor)


def _chunks(descriptor: int, url: str) -> Iterator[bytes]:
    while True:
        try:
            chunk = os.read(descriptor, CHUNK_SIZE)
        except OSError as exc:
            raise StorageUnavailable(f"{url}: the file could not be read ({exc.strerror})") from None
        if not chunk:
            return
        yield chunk


def local_name(url: str) -> str:
    """The file name a ``file://`` URL ends with (the folder's name for a folder)."""
    return _parse(url).name or "file"


def open_local(url: str, settings: Settings, *, use_openat2: bool = True) -> int:
    """A read-only descriptor of the file a ``file://`` URL names below one of the roots."""
    if not settings.file_roots:
        raise NotConfigured(
            f"{url}: file:// links are refused because no folder is allowed; "
            f"set {_ROOTS_SETTING} to the folders jobs may read from"
        )
    requested = _parse(url)
    for root, parts in _below_roots(requested, settings.file_roots):
        try:
            folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue  # a root that is gone or unreadable holds nothing
        try:
            return open_beneath(folder, parts, use_openat2=use_openat2)
        except SymlinkRefused:
            raise AccessDenied(
                f"{url}: the path goes through a symbolic link; file:// links are opened "
                "without following symlinks"
            ) from None
        except OSError as exc:
            if exc.errno in _NOT_FOUND:
                raise FileNotFound(f"{url}: no such file") from None
            if exc.errno == errno.EACCES:
                raise AccessDenied(f"{url}: the worker may not read this file") from None
            raise AccessDenied(f"{url}: the file could not be opened ({exc.strerror})") from None
        finally:
            os.close(folder)
    raise AccessDenied(f"{url}: the file is outside the folders allowed by {_ROOTS_SETTING}")


def _below_roots(requested: Path, roots: tuple[Path, ...]) -> Iterator[tuple[Path, list[str]]]:
    """Each root ``requested`` lies below as written, with the names leading to it."""
    for root in roots:
        spellings = dict.fromkeys((Path(os.path.abspath(root)), Path(os.path.realpath(root))))
        for spelling in spellings:
            if requested.is_relative_to(spelling):
                yield spelling, list(requested.relative_to(spelling).parts)


def _parse(url: str) -> Path:
    rest = url[len("file:") :]
    if not rest.startswith("//"):
        raise InvalidFileUrl(f"{url}: expected file:///absolute/path")
    authority, slash, path = rest[2:].partition("/")
    if authority not in ("", "localhost"):
        raise InvalidFileUrl(
            f"{url}: file:// links to other hosts ({authority!r}) are not supported"
        )
    if "?" in path or "#" in path:
        raise InvalidFileUrl(f"{url}: write '?' as %3F and '#' as %23 in file:// paths")
    try:
        decoded = unquote(slash + path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidFileUrl(f"{url}: the path is not valid UTF-8 once percent-decoded") from None
    if not decoded.startswith("/") or "\x00" in decoded:
        raise InvalidFileUrl(f"{url}: expected file:///absolute/path")
    if ".." in decoded.split("/"):
        # Nobody writing links on purpose needs '..', and a path without it can be matched to
        # a root by its spelling alone.
        raise AccessDenied(f"{url}: '..' is not allowed in file:// paths")
    return Path(decoded)
