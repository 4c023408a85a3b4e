"""Open a file below a directory handle without following a symbolic link anywhere on the way.

A path that is checked and then opened again by name can be changed in between (a component
swapped for a symlink, a file for another one). Opening relative to a handle on the root, with
no symlink followed in any component, leaves nothing to swap: what is opened is what lies
below the root at that moment, and the handle keeps it whatever happens to the names later.

Linux 5.6+ does this in one call, ``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``
(called through ``syscall``: Python has no binding). Where the kernel or a seccomp filter
refuses it, each component is opened in turn with ``O_NOFOLLOW`` relative to the one before.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import sys
from collections.abc import Sequence

# The number is the same on every architecture that adopted the common syscall table.
_OPENAT2 = 437
_OPENAT2_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x"})
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
# openat2 unknown to the kernel, or refused by a container's seccomp profile.
_NO_OPENAT2 = frozenset({errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL})

FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK
"""Flags of the final open: ``O_NONBLOCK`` so that a FIFO cannot hang the open."""
_FOLDER_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkRefused(OSError):
    """A component of the path is a symbolic link (or leaves the root)."""


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


class _Openat2:
    """The ``openat2`` system call, or ``None`` from ``call`` where this system lacks it."""

    def __init__(self) -> None:
        self.usable = sys.platform.startswith("linux") and platform.machine() in _OPENAT2_MACHINES
        self._syscall = None
        if self.usable:
            libc = ctypes.CDLL(None, use_errno=True)
            self._syscall = libc.syscall
            self._syscall.restype = ctypes.c_long

    def call(self, folder: int, relative: str) -> int | None:
        if not self.usable or self._syscall is None:
            return None
        how = _OpenHow(
            flags=FILE_FLAGS,
            mode=0,
            resolve=_RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
        )
        result = self._syscall(
            ctypes.c_long(_OPENAT2),
            ctypes.c_int(folder),
            ctypes.c_char_p(os.fsencode(relative)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if result >= 0:
            return int(result)
        code = ctypes.get_errno()
        if code in _NO_OPENAT2:
            # Not this kernel's call (or not allowed here): remember, and walk instead.
            self.usable = False
            return None
        if code in (errno.ELOOP, errno.EXDEV):
            raise SymlinkRefused(code, os.strerror(code), relative)
        raise OSError(code, os.strerror(code), relative)


_openat2 = _Openat2()


def open_beneath(folder: int, parts: Sequence[str], *, use_openat2: bool = True) -> int:
    """A read-only descriptor of ``parts`` below the open folder ``folder``.

    ``parts`` are plain names (no ``''``, ``'.'`` or ``'..'``; the caller refuses those).
    Raises ``SymlinkRefused`` when a component is a symlink, ``OSError`` otherwise.
    """
    if not parts:
        return os.open(".", FILE_FLAGS, dir_fd=folder)
    if use_openat2:
        descriptor = _openat2.call(folder, "/".join(parts))
        if descriptor is not None:
            return descriptor
    return _walk(folder, parts)


def _walk(folder: int, parts: Sequence[str]) -> int:
    current = os.dup(folder)
    try:
        for part in parts[:-1]:
            following = _open_part(current, part, _FOLDER_FLAGS)
            os.close(current)
            current = following
        return _open_part(current, parts[-1], FILE_FLAGS)
    finally:
        os.close(current)


def _open_part(folder: int, name: str, flags: int) -> int:
    try:
        return os.open(name, flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(folder, name)):
            raise SymlinkRefused(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise


def _is_link(folder: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False
