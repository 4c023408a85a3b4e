"""Drawing-wide facts of a DXF: layers, block definitions, header metadata."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from pgqueue.extractors.dxf_encoding import decoded
from pgqueue.extractors.dxf_numbers import number, point
from pgqueue.extractors.results import Block, Layer

# $INSUNITS codes (DXF reference) with the short names results use.
UNIT_ABBREVIATIONS = {
    1: "in", 2: "ft", 3: "mi", 4: "mm", 5: "cm", 6: "m", 7: "km", 8: "µin", 9: "mil",
    10: "yd", 11: "Å", 12: "nm", 13: "µm", 14: "dm", 15: "dam", 16: "hm", 17: "Gm",
    18: "au", 19: "ly", 20: "pc",
}
_NO_EXTENTS = 1e19  # ezdxf and AutoCAD write ±1e20 when extents were never computed
MAX_COMPUTED_EXTENTS_ENTITIES = 50_000
_JULIAN_2000 = 2451545.0  # 2000-01-01 12:00 as a Julian day, the scale of $TDUPDATE


def layers(document: Any, counts: Counter[str]) -> list[Layer]:
    """Layer table entries; ``counts`` holds entities per upper-case layer name."""
    found: list[Layer] = []
    for layer in document.layers:
        name = decoded(layer.dxf.name)
        found.append(
            Layer(
                name=name,
                color=abs(int(layer.dxf.get("color", 7))),
                linetype=layer.dxf.get("linetype"),
                is_on=bool(layer.is_on()),
                is_frozen=bool(layer.is_frozen()),
                is_locked=bool(layer.is_locked()),
                entity_count=counts.get(name.upper(), 0),
            )
        )
    return found


def blocks(document: Any, insert_counts: Counter[str]) -> list[Block]:
    """Named block definitions (not layouts, not anonymous ``*D``/``*T`` blocks)."""
    found: list[Block] = []
    for block in document.blocks:
        if block.is_any_layout or block.name.startswith("*"):
            continue
        found.append(
            Block(
                name=decoded(block.name),
                insert_count=insert_counts.get(block.name.upper(), 0),
                attributes=[decoded(definition.dxf.tag) for definition in block.attdefs()],
                entity_count=len(block),
            )
        )
    return found


def insert_counts(document: Any) -> Counter[str]:
    """References per block name, from layouts and from other blocks (nested blocks)."""
    counts: Counter[str] = Counter()
    for block in document.blocks:
        for entity in block.query("INSERT"):
            counts[entity.dxf.get("name", "").upper()] += 1
    return counts


def metadata(
    document: Any, entity_total: int, has_header: bool, warnings: list[str], encoding: str | None = None
) -> dict[str, Any]:
    """Header facts; without a HEADER section, those ezdxf would invent are None. ``encoding``:
    the codec the text was read with, when it was not ezdxf's choice."""
    header: Any = document.header if has_header else {}
    code = header.get("$INSUNITS")
    version = document.loaded_dxfversion or document.dxfversion
    try:
        extents, source = _extents(document, header)
    except Exception as exc:  # ezdxf's bounding boxes fail on some damaged entities
        warnings.append(f"the drawing's extents could not be computed: {type(exc).__name__}: {exc}")
        extents, source = None, None
    return {
        # the file's own version: ezdxf upgrades R13/R14 drawings to R2000 as it reads them
        "dxf_version": version if has_header else None,
        "release": release_of(version) if has_header else None,
        "units": unit_of(document, has_header),
        "insunits": code,
        "measurement": _measurement(header),
        "extents": extents,
        "extents_source": source,
        "encoding": encoding or document.encoding,
        # $TDCREATE is left out: ezdxf overwrites it with the time the file is loaded
        "updated": _julian(header.get("$TDUPDATE")),
        "last_saved_by": header.get("$LASTSAVEDBY") or None,
        "counts": {
            "entities": entity_total,
            "modelspace": len(document.modelspace()),
            "layouts": len(document.layouts),
            "layers": len(document.layers),
            "blocks": sum(1 for block in document.blocks if not block.is_any_layout),
        },
    }


def release_of(version: str) -> str | None:
    """The AutoCAD release that writes a DXF version (``AC1014`` is R14)."""
    from ezdxf.lldxf.const import acad_release

    return acad_release.get(version.upper())


def unit_of(document: Any, has_header: bool) -> str | None:
    if not has_header:
        return None
    return UNIT_ABBREVIATIONS.get(document.header.get("$INSUNITS", 0))


def _measurement(header: Any) -> str | None:
    value = header.get("$MEASUREMENT")
    return None if value is None else ("metric" if value == 1 else "imperial")


def _extents(document: Any, header: Any) -> tuple[list[list[float | None] | None] | None, str | None]:
    """Header extents when set; otherwise computed from model space when it is not huge."""
    low, high = header.get("$EXTMIN"), header.get("$EXTMAX")
    if low is not None and high is not None and all(abs(value) < _NO_EXTENTS for value in (*low, *high)):
        return [point(low), point(high)], "header"
    modelspace = document.modelspace()
    if len(modelspace) == 0 or len(modelspace) > MAX_COMPUTED_EXTENTS_ENTITIES:
        return None, None
    from ezdxf import bbox

    box = bbox.extents(modelspace, fast=True)
    if not box.has_data:
        return None, None
    return [point(box.extmin), point(box.extmax)], "computed"


def _julian(value: Any) -> str | None:
    day = number(value)
    if day is None or day <= 0:
        return None
    try:
        moment = datetime(2000, 1, 1, 12) + timedelta(days=day - _JULIAN_2000)
    except OverflowError:
        return None
    return moment.replace(microsecond=0).isoformat()
