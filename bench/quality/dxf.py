"""DXF: pgqueue's reading of each real drawing, checked against what ezdxf reads at run time.

The reference here is built with ezdxf's own means, not pgqueue's: block references are
expanded with ``Insert.multi_insert()`` and ``Insert.virtual_entities()``, ``\\U+`` escapes
are decoded with ``ezdxf.decode_dxf_unicode``, MTEXT is made plain with
``ezdxf.tools.text.plain_mtext``. The checks, per file:

- the file's own DXF version (``Drawing.loaded_dxfversion``);
- each layer name, decoded;
- each visible text string (TEXT, MTEXT with all its columns, visible ATTRIBs, MULTILEADER
  text, also inside block references and MINSERT arrays), as often as the drawing shows it;
- each dimension whose readings agree (ezdxf's ``get_measurement()``, the stored group 42 and
  the number the drawing displays) has that value in the result;
- no value in the result disagrees: every dimension value given is one of those certain values.

``tests/extractors/test_real_dxf.py`` runs the same checks and fails on any failed one.
"""

from __future__ import annotations

import codecs
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.quality import Score

_TEXT_KINDS = frozenset(("TEXT", "MTEXT", "ATTRIB"))
_DIMENSION_KINDS = frozenset(("DIMENSION", "ARC_DIMENSION", "LARGE_RADIAL_DIMENSION"))
_NUMBER = re.compile(r"\d*[.,]\d+|\d+")
_RELATIVE = 1e-6


@dataclass
class ReferenceDimension:
    measured: float | None  # ezdxf's get_measurement(), degrees for angles
    stored: float | None  # group 42, radians turned into degrees for angles
    shown: str  # the text the drawing displays
    scale: float = 1.0  # DIMLFAC of a length: the text shows the value times this

    def certain_value(self) -> float | None:
        """The value all readings agree on, None when they disagree or there is none."""
        value = self.measured if self.measured is not None else self.stored
        if value is None:
            return None
        if self.measured is not None and self.stored is not None and not _close(self.measured, self.stored):
            return None
        numbers = _NUMBER.findall(self.shown)
        if numbers and not any(_rounds_to(value, shown) or _rounds_to(value * self.scale, shown) for shown in numbers):
            return None
        return value


@dataclass
class Reference:
    version: str
    layers: set[str] = field(default_factory=set)
    texts: Counter[str] = field(default_factory=Counter)
    dimensions: list[ReferenceDimension] = field(default_factory=list)


def _close(first: float, second: float) -> bool:
    return abs(first - second) <= _RELATIVE * max(abs(first), abs(second), 1.0)


def _rounds_to(value: float, shown: str) -> bool:
    digits = shown.replace(",", ".")
    decimals = len(digits.partition(".")[2])
    return abs(abs(value) - float(digits)) <= 0.5 * 10.0**-decimals + 1e-9


def _normal(text: str) -> str:
    return " ".join(text.split())


def read_reference(path: Path) -> Reference:
    """What ezdxf reads in the file, with ezdxf's own tools."""
    import ezdxf

    document = _open(path)
    reference = Reference(document.loaded_dxfversion or document.dxfversion)
    reference.layers = {ezdxf.decode_dxf_unicode(layer.dxf.name) for layer in document.layers}
    for layout in document.layouts:
        for entity in _shown(layout):
            kind = entity.dxftype()
            if kind in _TEXT_KINDS:
                text = _normal(_plain(entity))
                if text:
                    reference.texts[text] += 1
            elif kind in _DIMENSION_KINDS:
                reference.dimensions.append(_dimension(entity))
    return reference


def _open(path: Path) -> Any:
    """The drawing read by ezdxf, in the Python codec of its legacy ``$DWGCODEPAGE``."""
    import ezdxf

    document = ezdxf.readfile(path)
    code_page = str(document.header.get("$DWGCODEPAGE", "")).lower()
    version = document.loaded_dxfversion or document.dxfversion
    if version >= "AC1021" or not code_page.startswith(("dos", "iso", "mac")):
        return document
    name = code_page.replace("dos", "cp").replace("mac-roman", "mac_roman")
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return document
    return ezdxf.readfile(path, encoding=codec)


def _shown(entities: Any) -> Iterator[Any]:
    """Entities and, for block references, every placement's attributes and block content."""
    for entity in entities:
        if entity.dxftype() == "MULTILEADER":
            yield from (part for part in entity.virtual_entities() if part.dxftype() in ("TEXT", "MTEXT"))
            continue
        if entity.dxftype() != "INSERT":
            yield entity
            continue
        for placement in entity.multi_insert() if entity.mcount > 1 else (entity,):
            yield from (attribute for attribute in placement.attribs if not attribute.is_invisible)
            yield from _shown(placement.virtual_entities())


def _plain(entity: Any) -> str:
    import ezdxf
    from ezdxf.tools.text import plain_mtext

    if entity.dxftype() == "MTEXT":
        parts = [entity.text]
        if entity.has_columns:
            parts.extend(column.text for column in entity.columns.linked_columns)
        return "\n".join(str(plain_mtext(ezdxf.decode_dxf_unicode(part))) for part in parts)
    if entity.dxftype() == "ATTRIB" and entity.has_embedded_mtext_entity:
        return str(plain_mtext(ezdxf.decode_dxf_unicode(entity.virtual_mtext_entity().text)))
    return str(ezdxf.decode_dxf_unicode(entity.plain_text()))


def _dimension(entity: Any) -> ReferenceDimension:
    try:
        measurement = entity.get_measurement()
        measured = None if hasattr(measurement, "x") else float(measurement)
    except TypeError:  # a dimension type ezdxf does not measure
        measured = None
    stored = entity.dxf.get("actual_measurement")
    angular = entity.dxftype() == "DIMENSION" and entity.dimtype in (2, 5)
    if stored is not None and angular:
        stored = math.degrees(stored)
    try:
        scale = 1.0 if angular else float(entity.override().get("dimlfac", 1.0))
    except Exception:  # a missing DIMSTYLE: the text is compared unscaled
        scale = 1.0
    shown = " ".join(_plain(item) for item in entity.virtual_entities() if item.dxftype() in ("TEXT", "MTEXT"))
    override = entity.dxf.get("text", "")
    if override.strip() and "<>" not in override:
        shown = override
    return ReferenceDimension(measured, stored, shown, scale)


def check(path: Path, result: dict[str, Any], score: Score) -> None:
    """Add the checks of one file to ``score`` (see the module docstring)."""
    reference = read_reference(path)
    name = path.name
    version = result["metadata"]["dxf_version"]
    score.check(version == reference.version, f"{name}: version {version}, ezdxf reads {reference.version}")
    layers = {layer["name"] for layer in result["layers"]}
    for layer in sorted(reference.layers):
        score.check(layer in layers, f"{name}: layer {layer!r} missing")
    texts = Counter(_normal(block["text"]) for block in result["text_blocks"])
    for text, count in sorted(reference.texts.items()):
        score.check(
            texts[text] >= count,
            f"{name}: text {text[:60]!r} shown {count} time(s), extracted {texts[text]}",
        )
    certain = [value for dimension in reference.dimensions if (value := dimension.certain_value()) is not None]
    given = [item["value"] for item in result["dimensions"] if item["value"] is not None]
    score.check(
        len(result["dimensions"]) == len(reference.dimensions),
        f"{name}: {len(result['dimensions'])} dimensions extracted, ezdxf reads {len(reference.dimensions)}",
    )
    unmatched = list(given)
    for value in certain:
        match = next((item for item in unmatched if _close(item, value)), None)
        score.check(match is not None, f"{name}: dimension value {value:g} missing")
        if match is not None:
            unmatched.remove(match)
    score.check(not unmatched, f"{name}: dimension values no reading agrees on: {unmatched}")


def run(real_dir: Path) -> list[Score]:
    from pgqueue.extractors.dxf import extract

    score = Score("dxf")
    for path in sorted(real_dir.glob("*.dxf")):
        started = time.perf_counter()
        result = extract(path, {})
        score.seconds.append(time.perf_counter() - started)
        score.files += 1
        check(path, result, score)
    return [score]
