"""Which schema ifcopenshell reads an IFC file with.

ifcopenshell knows a schema only by its exact name (``IFC2X3``, ``IFC4``, ``IFC4X3_ADD2``) and
refuses every other FILE_SCHEMA, although releases, candidates and addenda of one family
(``IFC2X_FINAL``, ``IFC4RC4``, ``IFC4_ADD2``, ``IFC4X3_RC4``...) differ from the named schema
in a few entities at most. Such a file is read with the nearest named schema; the records that
schema cannot take are counted and reported by the extractor.
"""

from __future__ import annotations

# The schemas this ifcopenshell build reads, by exact FILE_SCHEMA name.
NAMED_SCHEMAS = ("IFC2X3", "IFC4", "IFC4X3_ADD2")

# Name prefix -> nearest named schema; the first matching prefix wins, so longer ones go first.
# IFC4X1 is IFC4 ADD2 TC1 with alignment entities: its buildings are IFC4's. IFC4X2 (bridges)
# was folded into IFC4X3.
_NEAREST_BY_PREFIX = (
    ("IFC4X3", "IFC4X3_ADD2"),
    ("IFC4X2", "IFC4X3_ADD2"),
    ("IFC4X1", "IFC4"),
    ("IFC4", "IFC4"),
    ("IFC2X", "IFC2X3"),
    ("IFC1", "IFC2X3"),
    ("IFC2", "IFC2X3"),
    ("IFC", "IFC4X3_ADD2"),  # a later schema than any named one
)


def is_ifc_schema(name: str) -> bool:
    return name.upper().startswith("IFC")


def nearest_schema(name: str) -> str:
    """The named schema to read a file whose FILE_SCHEMA is ``name`` (an ``IFC...`` name)."""
    upper = name.upper()
    if upper in NAMED_SCHEMAS:
        return upper
    for prefix, schema in _NEAREST_BY_PREFIX:
        if upper.startswith(prefix):
            return schema
    raise ValueError(f"{name!r} is not an IFC schema name")


__all__ = ["NAMED_SCHEMAS", "is_ifc_schema", "nearest_schema"]
