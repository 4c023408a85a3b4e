"""From what an operator types (local paths, globs, URLs) to job requests.

Local files become ``file://`` URLs of their real path, and their format is read from their
content (``pgqueue.sniff``) unless it is forced; URLs keep their format from their extension.
Every refused input says why and what to do, and nothing is written until all are checked.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pgqueue import sniff
from pgqueue.enqueue import MAX_FILENAME, InvalidJob, JobRequest
from pgqueue.storage.urls import redact

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


class RefusedFile(ValueError):
    """An input that cannot become a job, with what to do about it."""


@dataclass
class Resolution:
    requests: list[JobRequest] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """One line per refused input."""
    notes: list[str] = field(default_factory=list)
    """One line per input whose name and content disagree."""
    local_files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Paths and globs that matched no file."""


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def expand(inputs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Inputs with globs expanded, in order, without duplicates; and those that matched nothing."""
    found: list[str] = []
    missing: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        if is_url(item):
            matches = [item]
        elif _GLOB_CHARACTERS.search(item):
            matches = sorted(path for path in glob.glob(item, recursive=True) if os.path.isfile(path))
        else:
            matches = [item] if os.path.lexists(item) else []
        if not matches:
            missing.append(item)
        for match in matches:
            if match not in seen:
                seen.add(match)
                found.append(match)
    return found, missing


def choose_format(name: str, detected: str | None, forced: str | None) -> tuple[str, str | None]:
    """The format to enqueue with, and a note when the name and the content disagree."""
    if forced:
        return forced, None
    claimed = sniff.from_name(name)
    if detected == sniff.DWG:
        raise RefusedFile(
            f"{name} is a DWG drawing: pgqueue reads DXF, not DWG; save it as DXF in your CAD "
            "program (or convert it with the ODA File Converter) and enqueue the .dxf"
        )
    if detected is None:
        raise RefusedFile(
            f"cannot tell the format of {name} from its content (not PDF, DXF, IFC or STEP); "
            "if you are sure, force it with --format"
        )
    note = None
    if claimed is not None and claimed != detected:
        note = f"{name} is named like {claimed} but its content is {detected}: enqueued as {detected}"
    return detected, note


def request_for_path(
    path: Path, forced: str | None, options: Mapping[str, Any], max_retries: int = 3
) -> tuple[JobRequest, str | None]:
    if path.is_dir():
        raise RefusedFile(f"{path} is a folder: give its files, e.g. '{path}/**/*.pdf' (quoted)")
    try:
        real = path.resolve(strict=True)
        size = real.stat().st_size
        detected = None if forced else sniff.sniff_file(real)
    except FileNotFoundError:
        raise RefusedFile(f"{path}: no such file") from None
    except PermissionError:
        raise RefusedFile(f"{path}: permission denied; check the file's permissions") from None
    if size == 0 and not forced:
        raise RefusedFile(f"{path} is empty: there is nothing to extract")
    fmt, note = choose_format(path.name, detected, forced)
    return _request(real.name[:MAX_FILENAME], real.as_uri(), size, fmt, options, max_retries), note


def request_for_url(
    url: str, forced: str | None, options: Mapping[str, Any], max_retries: int = 3
) -> JobRequest:
    """A job for a remote file. Its size is not known here: it is recorded as 0 (the worker's
    size limit still applies when it downloads)."""
    path = urlsplit(url).path
    shown = redact(url)  # the name and messages are stored and printed: no secret in them
    name = path.rstrip("/").rsplit("/", 1)[-1] or shown
    fmt = forced or sniff.from_name(path)
    if fmt == sniff.DWG:
        raise RefusedFile(
            f"{shown} is a DWG drawing: pgqueue reads DXF, not DWG; convert it to DXF and enqueue that"
        )
    if fmt is None:
        raise RefusedFile(f"cannot tell the format of {shown} from its name: give it with --format")
    return _request(name[:MAX_FILENAME], url, 0, fmt, options, max_retries)


def resolve(
    inputs: Sequence[str], forced: str | None, options: Mapping[str, Any], max_retries: int = 3
) -> Resolution:
    found, missing = expand(inputs)
    resolution = Resolution(missing=missing)
    for item in found:
        try:
            if is_url(item):
                resolution.requests.append(request_for_url(item, forced, options, max_retries))
            else:
                request, note = request_for_path(Path(item), forced, options, max_retries)
                resolution.requests.append(request)
                resolution.local_files.append(Path(item).resolve())
                if note:
                    resolution.notes.append(note)
        except RefusedFile as exc:
            resolution.refused.append(str(exc))
    return resolution


def outside_roots(files: Sequence[Path], roots: Sequence[Sequence[Path]]) -> list[Path]:
    """The ``files`` that no worker may read, each worker reading under its own ``roots``."""
    workers = [[Path(os.path.realpath(root)) for root in group] for group in roots]
    return [
        file for file in files
        if not any(any(Path(os.path.realpath(file)).is_relative_to(root) for root in group)
                   for group in workers)
    ]


def _request(
    name: str, url: str, size: int, fmt: str, options: Mapping[str, Any], max_retries: int
) -> JobRequest:
    try:
        return JobRequest(name, url, size, fmt, options=dict(options), max_retries=max_retries)
    except InvalidJob as exc:
        raise RefusedFile(f"{name}: {exc}") from None
