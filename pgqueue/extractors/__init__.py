"""The extractor registry: a format name maps to a function ``extract(path, options) -> dict``.

Extractors are synchronous and pure: they read one local file, take the job's options, and
return a JSON-able dict. They know nothing of the database or of storage. Built-in extractors
are named by import path and imported lazily, in the process that runs them, so a worker that
never sees an IFC file never imports ifcopenshell.

Limits that come from settings (page limit, werk24 token) reach built-in extractors through
``pgqueue.extractors.context.current()``; plugged-in extractors may ignore them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, KeysView, Mapping
from pathlib import Path
from typing import Any

from pgqueue.errors import UnsupportedFormat

Extractor = Callable[[Path, Mapping[str, Any]], dict[str, Any]]

BUILTIN: dict[str, str] = {
    "pdf": "pgqueue.extractors.pdf:extract",
    "dxf": "pgqueue.extractors.dxf:extract",
    "ifc": "pgqueue.extractors.ifc:extract",
    "step": "pgqueue.extractors.step:extract",
    "werk24": "pgqueue.extractors.werk24:extract",
}

# The version of each built-in extractor, recorded with every result. Bump a format's version
# when its output changes (a fix that adds or corrects values): `pgqueue reextract` finds the
# results written by older versions. One line per format, so bumps merge easily.
VERSIONS: dict[str, str] = {
    "pdf": "1",
    "dxf": "1",
    "ifc": "1",
    "step": "1",
    "werk24": "1",
}
UNVERSIONED = "unversioned"

_registry: dict[str, Extractor | str] = dict(BUILTIN)
_replaced: set[str] = set()


def register(fmt: str, extractor: Extractor | str) -> None:
    """Add or replace the extractor of ``fmt`` (a callable, or ``'module:function'``)."""
    if not fmt or len(fmt) > 20:
        raise ValueError(f"format must be 1-20 characters, got {fmt!r}")
    _registry[fmt] = extractor
    _replaced.add(fmt)


def register_many(mapping: Mapping[str, str]) -> None:
    for fmt, target in mapping.items():
        register(fmt, target)


def formats() -> KeysView[str]:
    """Every format with an extractor in this process (a live view: enqueue asks per job)."""
    return _registry.keys()


def get(fmt: str) -> Extractor:
    """The extractor of ``fmt``, imported on first use."""
    try:
        target = _registry[fmt]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnsupportedFormat(f"unknown format {fmt!r}; known formats: {known}") from None
    if isinstance(target, str):
        target = _load(target)
        _registry[fmt] = target
    return target


def identity(fmt: str) -> tuple[str, str]:
    """(name, version) of the extractor of ``fmt``, recorded with its results. A plugged-in
    extractor is named by its import path; its version is its ``version`` attribute, if any."""
    if fmt not in _replaced and fmt in BUILTIN:
        return BUILTIN[fmt], VERSIONS[fmt]
    target = _registry[fmt]
    if isinstance(target, str):
        return target, UNVERSIONED
    name = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"
    return name, str(getattr(target, "version", UNVERSIONED))


def _load(path: str) -> Extractor:
    module_name, sep, attribute = path.partition(":")
    if not sep:
        raise ValueError(f"extractor must be 'module:function', got {path!r}")
    module = importlib.import_module(module_name)
    function: Extractor = getattr(module, attribute)
    return function


def reset() -> None:
    """Back to the built-in registry (tests)."""
    _registry.clear()
    _registry.update(BUILTIN)
    _replaced.clear()
