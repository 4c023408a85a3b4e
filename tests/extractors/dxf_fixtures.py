"""Small DXF drawings, one per kind of trouble real drawings give the extractor.

Each is written with ezdxf by the test that needs it; the tests compare the extractor's result
with what ezdxf reads from the same file (``bench.quality.dxf``) and with the facts written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ezdxf

BLOCK_TEXTS = ("BLOCK TEXT", "BLOCK NOTE")
NESTED_TEXT = "INNER"
ANONYMOUS_TEXT = "ANONYMOUS"
MINSERT_ROWS, MINSERT_COLUMNS = 3, 2
FLAG_VALUES = {"NAME": "Flag", "POS": "x = 1.000"}
HIDDEN_VALUE = "NOT SHOWN"
BLOCK_DIMENSION = 40.0  # a linear dimension inside the block SYMBOL
ARC_LENGTH = 10 * math.pi / 3


def _saved(document: Any, path: Path) -> Path:
    document.saveas(path)
    return path


def block_references(path: Path) -> Path:
    """Text in a named block inserted twice (moved, turned, scaled), an anonymous ``*U`` block,
    a block nested in a block, a 3 x 2 MINSERT with visible and invisible attributes, and a
    dimension inside a block."""
    document = ezdxf.new("R2018")
    document.dimstyles.get("Standard").dxf.dimlfac = 1.0
    modelspace = document.modelspace()

    inner = document.blocks.new("INNER")
    inner.add_text(NESTED_TEXT, height=1.5).set_placement((1, 1))
    symbol = document.blocks.new("SYMBOL")
    symbol.add_text(BLOCK_TEXTS[0], height=2.5).set_placement((0, 5))
    symbol.add_mtext(BLOCK_TEXTS[1], dxfattribs={"char_height": 2.0, "insert": (0, -5)})
    symbol.add_blockref("INNER", (20, 0), dxfattribs={"rotation": 90})
    symbol.add_linear_dim(base=(0, -12), p1=(0, -10), p2=(BLOCK_DIMENSION, -10), dimstyle="Standard").render()
    modelspace.add_blockref("SYMBOL", (100, 50), dxfattribs={"rotation": 30, "xscale": 2, "yscale": 2})
    modelspace.add_blockref("SYMBOL", (-50, 0))

    anonymous = document.blocks.new_anonymous_block("U")
    anonymous.add_text(ANONYMOUS_TEXT, height=2.0).set_placement((3, 3))
    modelspace.add_blockref(anonymous.name, (0, 200))

    flag = document.blocks.new("FLAG")
    flag.add_circle((0, 0), 1.0)
    for index, tag in enumerate((*FLAG_VALUES, "HIDDEN")):
        flag.add_attdef(tag, (1, -index), dxfattribs={"height": 0.5})
    grid = modelspace.add_blockref("FLAG", (300, 0), dxfattribs={"rotation": 15})
    grid.add_auto_attribs({**FLAG_VALUES, "HIDDEN": HIDDEN_VALUE})
    grid.get_attrib("HIDDEN").is_invisible = True
    grid.grid(size=(MINSERT_ROWS, MINSERT_COLUMNS), spacing=(10, 20))
    return _saved(document, path)


def dimension_readings(path: Path) -> Path:
    """Dimensions whose readings agree, and ones whose readings do not: a DIMSTYLE the table
    lacks, an unknown type with only a stored measurement, a LARGE_RADIAL_DIMENSION, an angle
    whose stored value (group 42) is not what its points measure, an ARC_DIMENSION, a text
    override that shows another number."""
    document = ezdxf.new("R2018")
    document.dimstyles.get("Standard").dxf.dimlfac = 1.0
    modelspace = document.modelspace()
    style = {"dimstyle": "Standard"}

    plain = modelspace.add_linear_dim(base=(0, 10), p1=(0, 0), p2=(30, 0), **style).render()
    plain.dimension.dxf.actual_measurement = 30.0

    orphan = modelspace.add_linear_dim(base=(0, 30), p1=(0, 20), p2=(25, 20), **style).render()
    orphan.dimension.dxf.dimstyle = "DIMSTYLE1"  # not in the DIMSTYLE table

    unknown = modelspace.add_linear_dim(base=(0, 50), p1=(0, 40), p2=(12.5, 40), **style).render()
    unknown.dimension.dxf.dimtype = 7 | 32  # no such type; the stored value still says 12.5
    unknown.dimension.dxf.actual_measurement = 12.5

    large = modelspace.add_radius_dim(center=(100, 0), radius=7.25, angle=30, **style).render()
    _as_large_radial(modelspace, large.dimension, 7.25)

    angle = modelspace.add_angular_dim_3p(
        base=(60, 60), center=(50, 50), p1=(60, 50), p2=(50, 60), **style
    ).render()
    angle.dimension.dxf.actual_measurement = math.radians(270)  # not what the points measure

    arc = modelspace.add_arc_dim_cra(center=(0, 100), radius=10, start_angle=0, end_angle=60, distance=3, **style)
    arc.render().dimension.dxf.actual_measurement = ARC_LENGTH  # ezdxf cannot measure its type

    overridden = modelspace.add_linear_dim(base=(0, 150), p1=(0, 140), p2=(20, 140), text="35", **style)
    overridden.render()
    return _saved(document, path)


def _as_large_radial(modelspace: Any, radius_dimension: Any, radius: float) -> None:
    """A LARGE_RADIAL_DIMENSION (jogged radius) showing the block of ``radius_dimension``;
    ezdxf reads this type but cannot measure it: only group 42 holds its value."""
    kept = ("layer", "geometry", "dimstyle", "defpoint", "text_midpoint")
    attributes = {name: radius_dimension.dxf.get(name) for name in kept}
    large = modelspace.new_entity("LARGE_RADIAL_DIMENSION", {**attributes, "dimtype": 9})
    large.dxf.actual_measurement = radius
    modelspace.delete_entity(radius_dimension)
    assert large.dxftype() == "LARGE_RADIAL_DIMENSION"


GREEK_LAYER = "ΛΑΓΕΡ"
GREEK_TEXT = "αβγ Ä"
FORMATTED_MTEXT = r"{\fArial|b1;Bold} \S1/2; \~and\~\\ back\P\C1;\U+0394T"
FORMATTED_PLAIN = "Bold 1/2  and \\ back\nΔT"
LEGACY_TEXT = "Grüße Maß ½"


def escaped_text(path: Path) -> Path:
    """An R12 drawing whose layer name, TEXT and MTEXT carry ``\\U+`` escapes and MTEXT codes,
    as AutoCAD writes characters outside the code page."""
    document = ezdxf.new("R2000")
    document.layers.add(_escaped(GREEK_LAYER))
    modelspace = document.modelspace()
    modelspace.add_text(_escaped(GREEK_TEXT), dxfattribs={"layer": _escaped(GREEK_LAYER)})
    modelspace.add_mtext(FORMATTED_MTEXT).set_location((0, 20))
    return _saved(document, path)


def _escaped(text: str) -> str:
    return "".join(character if ord(character) < 128 else f"\\U+{ord(character):04X}" for character in text)


def legacy_code_page(path: Path, code_page: str = "DOS850", codec: str = "cp850") -> Path:
    """An R12 DXF written in a DOS code page (as old AutoCAD versions wrote them)."""
    document = ezdxf.new("R12")
    document.modelspace().add_text(LEGACY_TEXT, dxfattribs={"height": 2.5})
    text = _dxf_text(document).replace("$DWGCODEPAGE\n  3\nANSI_1252\n", f"$DWGCODEPAGE\n  3\n{code_page}\n")
    assert code_page in text
    path.write_bytes(text.encode(codec))
    return path


def _dxf_text(document: Any) -> str:
    from io import StringIO

    stream = StringIO()
    document.write(stream)
    return stream.getvalue()


def mtext_columns(path: Path) -> Path:
    """MTEXT with three static columns: ezdxf's plain_text() reads only the first."""
    document = ezdxf.new("R2018")
    mtext = document.modelspace().add_mtext_static_columns(
        ["COLUMN ONE", "COLUMN TWO", "COLUMN THREE"], width=20, gutter_width=2, height=10
    )
    mtext.dxf.char_height = 2.0
    return _saved(document, path)


def older_version(path: Path, version: str = "AC1014") -> Path:
    """A drawing whose header states ``version`` (R13 or R14); ezdxf upgrades it on reading."""
    document = ezdxf.new("R2000")
    document.modelspace().add_line((0, 0), (10, 0))
    text = _dxf_text(document).replace("$ACADVER\n  1\nAC1015\n", f"$ACADVER\n  1\n{version}\n", 1)
    path.write_text(text, encoding="cp1252")
    return path


LEADER_TEXT = "SEE NOTE 3"


def leader(path: Path) -> Path:
    """A MULTILEADER whose text is MTEXT content."""
    from ezdxf.math import Vec2
    from ezdxf.render import mleader

    document = ezdxf.new("R2018")
    builder = document.modelspace().add_multileader_mtext("Standard")
    builder.set_content(LEADER_TEXT, char_height=2.5)
    builder.add_leader_line(mleader.ConnectionSide.left, [Vec2(-20, 15)])
    builder.build(insert=Vec2(5, 0))
    return _saved(document, path)


def big_grid(path: Path, rows: int, columns: int) -> Path:
    """A MINSERT of a block holding one text, ``rows`` x ``columns`` placements."""
    document = ezdxf.new("R2018")
    cell = document.blocks.new("CELL")
    cell.add_text("CELL", height=0.5).set_placement((0, 0))
    document.modelspace().add_blockref("CELL", (0, 0)).grid(size=(rows, columns), spacing=(1, 1))
    return _saved(document, path)
