"""What block references show: text, attributes and dimensions inside INSERTs, in world space.

A drawing places much of its text through blocks: title blocks, symbols, anonymous ``*U``
blocks, blocks inside blocks, MINSERT arrays (a 5 x 5 MINSERT is 25 placements). Each
placement shows the block's TEXT and MTEXT (moved, turned and scaled into world coordinates),
its constant ATTDEFs, the ATTRIBs attached to the reference, and the block's dimensions.
Dimensions are placed too, so their measurement is the world length: a block reference that
scales a dimension makes the length differ from the text the block shows, and the dimension
then has no certain value (``dxf_measurements``).

Only blocks that hold something to read are entered (known per block, once), so a drawing
with thousands of references to a bolt symbol costs nothing here. Self-referencing blocks,
deep nesting and huge arrays are cut short, with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

TEXT_KINDS = frozenset(("TEXT", "MTEXT", "ATTRIB", "MULTILEADER"))
DIMENSION_KINDS = frozenset(("DIMENSION", "ARC_DIMENSION", "LARGE_RADIAL_DIMENSION"))
_READ_KINDS = TEXT_KINDS | DIMENSION_KINDS | {"ATTDEF"}
MAX_DEPTH = 16
MAX_PLACED = 5_000  # texts and dimensions read from block references, all together
_NOT_UNIFORM = "dimensions in block references scaled unevenly (x and y apart) were not read"


class Placements:
    """Walks entities and the block references among them; ``warnings`` collects cut-offs."""

    def __init__(self, document: Any, warnings: list[str]) -> None:
        self.document = document
        self.warnings = warnings
        self.placed = 0
        self.limit = MAX_PLACED
        self._readable: dict[str, bool] = {}
        self._warned: set[str] = set()

    def annotations(self, entities: Iterable[Any]) -> Iterator[Any]:
        """TEXT, MTEXT, ATTRIB, MULTILEADER and dimension entities of ``entities`` and of what
        they insert."""
        for entity in entities:
            kind = entity.dxftype()
            if kind in TEXT_KINDS or kind in DIMENSION_KINDS:
                yield entity
            elif kind == "INSERT":
                yield from self._reference(entity, None, ())

    def _reference(self, insert: Any, matrix: Any, path: tuple[str, ...]) -> Iterator[Any]:
        """What one INSERT (every placement of a MINSERT) shows; ``matrix`` places the block
        that holds it, None for a layout."""
        name = insert.dxf.get("name", "")
        for placement in insert.multi_insert() if insert.mcount > 1 else (insert,):
            if self.placed >= self.limit:
                self._warn(self._too_many())
                return
            for attribute in placement.attribs:
                if not attribute.is_invisible:
                    yield from self._counted(_placed(attribute, matrix))
            if not self._is_readable(name):
                continue
            if name.upper() in path or len(path) >= MAX_DEPTH:
                self._warn(f"block {name!r} references itself or nests deeper than {MAX_DEPTH} levels; "
                           "what it holds there was not read")
                continue
            block = self.document.blocks.get(name)
            if block is None:
                continue
            inner = placement.matrix44()
            yield from self._block(block, inner if matrix is None else inner @ matrix, (*path, name.upper()))

    def _block(self, block: Any, matrix: Any, path: tuple[str, ...]) -> Iterator[Any]:
        for entity in block:
            kind = entity.dxftype()
            if kind in DIMENSION_KINDS:
                placed = _placed_dimension(entity, matrix)
                if placed is None:
                    self._warn(_NOT_UNIFORM)
                else:
                    yield from self._counted(placed)
            elif kind in ("TEXT", "MTEXT") or (kind == "ATTDEF" and entity.is_const):
                yield from self._counted(_placed(entity, matrix))
            elif kind == "INSERT":
                yield from self._reference(entity, matrix, path)

    def _counted(self, entity: Any) -> Iterator[Any]:
        if self.placed >= self.limit:
            self._warn(self._too_many())
            return
        self.placed += 1
        yield entity

    def _too_many(self) -> str:
        return f"only the first {self.limit:,} texts and dimensions inside block references were read"

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)

    def _is_readable(self, name: str) -> bool:
        """Whether the block, or a block it references, holds text, attributes or dimensions."""
        key = name.upper()
        known = self._readable.get(key)
        if known is not None:
            return known
        self._readable[key] = False  # a block that references itself adds nothing more
        block = self.document.blocks.get(name)
        readable = block is not None and any(
            entity.dxftype() in _READ_KINDS
            or (entity.dxftype() == "INSERT" and (entity.attribs or self._is_readable(entity.dxf.get("name", ""))))
            for entity in block
        )
        self._readable[key] = readable
        return readable


def _placed(entity: Any, matrix: Any) -> Any:
    """``entity`` moved into world coordinates; where ezdxf cannot transform it (non-uniform
    scaling of some texts), the copy keeps its text at the transformed insertion point."""
    if matrix is None:
        return entity
    copy = entity.copy()
    try:
        return copy.transform(matrix)
    except Exception:  # NonUniformScalingError and kin: the text still counts, placed roughly
        copy = entity.copy()
        if copy.dxf.hasattr("insert"):
            copy.dxf.insert = matrix.transform(copy.dxf.insert)
        return copy


def _placed_dimension(dimension: Any, matrix: Any) -> Any | None:
    """A dimension moved into world coordinates (a copy without its ``*D`` block, holding the
    block's content itself); None where ezdxf cannot transform it (uneven scaling)."""
    try:
        return dimension.copy().transform(matrix)
    except Exception:  # NonUniformScalingError and kin
        return None
