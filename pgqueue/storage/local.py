"""``file://`` links, limited to the folders in ``settings.file_roots``.

The path is percent-decoded, as ``Path.as_uri()`` writes it (``file:///data/plate%201.pdf``);
a literal space also works. Only ``file:///path`` and ``file://localhost/path`` are accepted.
The real path (every symlink resolved) must lie inside the real path of a root; the file is then
used in place, by that real path, so a symlink swapped in later cannot redirect the read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote

from pgqueue.errors import AccessDenied, FileNotFound, InvalidFileUrl, NotConfigured
from pgqueue.settings import Settings
from pgqueue.storage.spool import check_announced_size

_ROOTS_SETTING = "PGQUEUE_FILE_ROOTS"


def local_path(url: str, settings: Settings) -> Path:
    """The checked real path of a ``file://`` URL, or a classified error."""
    if not settings.file_roots:
        raise NotConfigured(
            f"{url}: file:// links are refused because no folder is allowed; "
            f"set {_ROOTS_SETTING} to the folders jobs may read from"
        )
    requested = _parse(url)
    real = Path(os.path.realpath(requested))
    roots = [Path(os.path.realpath(root)) for root in settings.file_roots]
    if not any(real.is_relative_to(root) for root in roots):
        raise AccessDenied(f"{url}: the file is outside the folders allowed by {_ROOTS_SETTING}")
    try:
        status = real.stat()
    except FileNotFoundError:
        raise FileNotFound(f"{url}: no such file") from None
    except PermissionError:
        raise AccessDenied(f"{url}: permission denied") from None
    if not stat.S_ISREG(status.st_mode):
        raise InvalidFileUrl(f"{url}: not a regular file")
    if not os.access(real, os.R_OK):
        raise AccessDenied(f"{url}: the worker may not read this file")
    check_announced_size(status.st_size, settings.max_file_size, url)
    return real


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
        # Nobody writing links on purpose needs '..'; refusing it outright means a root check
        # never has to reason about how '..' and symlinks combine.
        raise AccessDenied(f"{url}: '..' is not allowed in file:// paths")
    return Path(decoded)
