"""STEP (ISO 10303-21, AP203 / AP214 / AP242) extraction with our own streaming reader.

One pass over the records keeps only what the result needs: entity counts, products, the
PRODUCT_DEFINITION -> PRODUCT_DEFINITION_FORMATION -> PRODUCT links, NEXT_ASSEMBLY_USAGE_
OCCURRENCEs, units, layers and named solids. Memory therefore grows with the number of
products, not with the size of the file.

Result keys, besides those of every CAD result:

- ``schema``: ``AP203``, ``AP214`` or ``AP242``, sniffed from FILE_SCHEMA (not the extension);
- ``header``: FILE_DESCRIPTION and FILE_NAME fields, and the raw FILE_SCHEMA names;
- ``products``: ``{id, name, description}`` per PRODUCT, in file order (first 1,000);
- ``assembly`` (option ``assembly``, else ``None``): the top-level products, each
  ``{id, name, quantity, children}``; a child's ``quantity`` is how many times it occurs
  under that parent (one NEXT_ASSEMBLY_USAGE_OCCURRENCE each);
- ``units``: unit names by kind (``length``, ``plane_angle``, ``solid_angle``) from the
  representation contexts, e.g. ``{"length": "millimetre"}`` or ``{"length": "inch"}``;
- ``entity_counts``: instances by entity type; each partial type of a complex instance counts
  (``metadata.instance_count`` is the number of instances);
- ``dimensions``: the semantic PMI of AP242 files (dimensional sizes and locations with their
  tolerances, geometric tolerances with their magnitudes), see ``step_pmi``;
- ``geometry`` (option ``geometry``, needs the ``pgqueue[geometry]`` extra): bounding box and
  volume in millimetres, computed by OpenCASCADE.

``geometry_summary`` counts topology (solids, shells, faces, edges, vertices); ``entities``
lists the solids and surface models with their names; ``layers`` come from
PRESENTATION_LAYER_ASSIGNMENT.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from pgqueue.errors import CorruptFile, UnsupportedFormat
from pgqueue.extractors.options import OptionsModel, parse_options
from pgqueue.extractors.results import Layer, cad_result, geometry_summary
from pgqueue.extractors.step_pmi import PMI_PARTIALS, PMI_TYPES, PmiCollector
from pgqueue.extractors.step_reader import (
    Enumeration,
    Header,
    Record,
    Reference,
    Value,
    open_step,
)

MAX_PRODUCTS = 1000
MAX_ENTITIES = 1000
MAX_ASSEMBLY_NODES = 5000
MAX_ASSEMBLY_DEPTH = 64

# FILE_SCHEMA names (or their leading part) of the application protocols we read.
APPLICATION_PROTOCOLS: tuple[tuple[str, str], ...] = (
    ("CONFIG_CONTROL_DESIGN", "AP203"),
    ("AP203_CONFIGURATION_CONTROLLED_3D_DESIGN", "AP203"),
    ("AUTOMOTIVE_DESIGN", "AP214"),
    ("AP214", "AP214"),
    ("AP242_MANAGED_MODEL_BASED_3D_ENGINEERING", "AP242"),
)

TOPOLOGY_KINDS: dict[str, str] = {
    "MANIFOLD_SOLID_BREP": "solid",
    "BREP_WITH_VOIDS": "solid",
    "FACETED_BREP": "solid",
    "TESSELLATED_SOLID": "solid",
    "SHELL_BASED_SURFACE_MODEL": "surface_model",
    "TESSELLATED_SHELL": "surface_model",
    "CLOSED_SHELL": "shell",
    "OPEN_SHELL": "shell",
    "ADVANCED_FACE": "face",
    "FACE_SURFACE": "face",
    "EDGE_CURVE": "edge",
    "VERTEX_POINT": "vertex",
}
BODY_TYPES = frozenset(
    name for name, kind in TOPOLOGY_KINDS.items() if kind in ("solid", "surface_model")
)
PRODUCT_DEFINITION_TYPES = frozenset(
    {"PRODUCT_DEFINITION", "PRODUCT_DEFINITION_WITH_ASSOCIATED_DOCUMENTS"}
)
FORMATION_TYPES = frozenset(
    {"PRODUCT_DEFINITION_FORMATION", "PRODUCT_DEFINITION_FORMATION_WITH_SPECIFIED_SOURCE"}
)
UNIT_KINDS = {
    "LENGTH_UNIT": "length",
    "PLANE_ANGLE_UNIT": "plane_angle",
    "SOLID_ANGLE_UNIT": "solid_angle",
}
SI_KINDS = {"METRE": "length", "RADIAN": "plane_angle", "STERADIAN": "solid_angle"}
UNIT_TYPES = frozenset({"SI_UNIT", "CONVERSION_BASED_UNIT"})
GEOMETRY_EXTRA_HINT = "install pgqueue[geometry] for bounding box and volume"


class Options(OptionsModel):
    """Options of ``step`` jobs."""

    assembly: bool = Field(True, description="Build the assembly tree with quantities.")
    geometry: bool = Field(
        False, description="Bounding box and volume; needs the optional OCP extra (pgqueue[geometry])."
    )


def application_protocol(schema: str) -> str | None:
    """``AP203``/``AP214``/``AP242`` for a FILE_SCHEMA name, ``None`` when it is none of them."""
    for prefix, protocol in APPLICATION_PROTOCOLS:
        if schema.startswith(prefix):
            return protocol
    return None


def si_unit_name(prefix: str | None, name: str) -> str:
    """``(MILLI, METRE)`` -> ``millimetre``; ``(MILLI, SQUARE_METRE)`` -> ``square millimetre``."""
    words = name.lower().split("_")
    if prefix:
        words[-1] = prefix.lower() + words[-1]
    return " ".join(words)


def extract(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    chosen = parse_options(Options, options)
    collector = _Collector(assembly=chosen.assembly)
    with open_step(path) as step_file:
        protocol = _check_schema(step_file.header)
        for record in step_file.records():
            collector.add(record)
        instance_count = step_file.instance_count
    result = cad_result()
    result.update(
        schema=protocol,
        header=_header_summary(step_file.header),
        products=collector.product_list(result["warnings"]),
        assembly=collector.assembly_tree(result["warnings"]) if chosen.assembly else None,
        units=collector.units(result["warnings"]),
        entity_counts=dict(sorted(collector.counts.items())),
        geometry=None,
    )
    result["dimensions"] = collector.pmi.dimensions(collector.unit_names, result["warnings"])
    result["metadata"] = _metadata(step_file.header, instance_count, len(collector.products))
    result["geometry_summary"] = geometry_summary(collector.topology)
    result["entities"] = collector.bodies
    result["layers"] = collector.layers
    if collector.bodies_seen > MAX_ENTITIES:
        result["warnings"].append(
            f"entities lists the first {MAX_ENTITIES} of {collector.bodies_seen} solids and "
            "surface models"
        )
    if chosen.geometry:
        result["geometry"] = _geometry(path, result["warnings"], result["errors"])
    return result


def _check_schema(header: Header) -> str:
    names = header.schema_names
    if not names:
        raise CorruptFile("FILE_SCHEMA names no schema")
    if any(name.startswith("IFC") for name in names):
        raise UnsupportedFormat("this is an IFC file; enqueue it as format ifc")
    for name in names:
        protocol = application_protocol(name)
        if protocol is not None:
            return protocol
    raise UnsupportedFormat(
        f"unsupported STEP schema {', '.join(names)}; supported: AP203 (CONFIG_CONTROL_DESIGN), "
        "AP214 (AUTOMOTIVE_DESIGN), AP242 (AP242_MANAGED_MODEL_BASED_3D_ENGINEERING_MIM_LF)"
    )


def _header_summary(header: Header) -> dict[str, Any]:
    return {
        "description": list(header.description),
        "implementation_level": header.implementation_level,
        "name": header.name,
        "time_stamp": header.time_stamp,
        "author": list(header.author),
        "organization": list(header.organization),
        "preprocessor": header.preprocessor_version,
        "originating_system": header.originating_system,
        "authorization": header.authorization,
        "schemas": list(header.schemas),
    }


def _metadata(header: Header, instance_count: int, product_count: int) -> dict[str, Any]:
    return {
        "file_name": header.name,
        "timestamp": header.time_stamp,
        "author": _joined(header.author),
        "organization": _joined(header.organization),
        "preprocessor": header.preprocessor_version,
        "application": header.originating_system,
        "authorization": header.authorization,
        "description": _joined(header.description),
        "instance_count": instance_count,
        "product_count": product_count,
    }


def _joined(values: tuple[str, ...]) -> str | None:
    text = ", ".join(value for value in values if value.strip())
    return text or None


# --- one pass over the records ---------------------------------------------------------------


@dataclass
class _Product:
    id: str
    name: str
    description: str


@dataclass
class _Collector:
    """What one pass keeps of the records; everything else is only counted."""

    assembly: bool
    counts: Counter[str] = field(default_factory=Counter)
    topology: Counter[str] = field(default_factory=Counter)
    products: dict[int, _Product] = field(default_factory=dict)
    formations: dict[int, int] = field(default_factory=dict)  # formation -> product
    definitions: dict[int, int] = field(default_factory=dict)  # definition -> formation
    occurrences: list[tuple[int, int]] = field(default_factory=list)  # parent, child definition
    unit_names: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> kind, name
    context_units: list[list[int]] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    bodies_seen: int = 0
    pmi: PmiCollector = field(default_factory=PmiCollector)

    def add(self, record: Record) -> None:
        types = record.types
        if len(types) > 1:
            self.counts.update(types)
            self._add_complex(record)
            return
        entity = types[0]
        self.counts[entity] += 1
        kind = TOPOLOGY_KINDS.get(entity)
        if kind is not None:
            self.topology[kind] += 1
            if entity in BODY_TYPES:
                self._add_body(record, entity)
        elif entity == "PRODUCT":
            self._add_product(record)
        elif entity in FORMATION_TYPES:
            self._link(self.formations, record, 2)
        elif entity in PRODUCT_DEFINITION_TYPES:
            self._link(self.definitions, record, 2)
        elif entity == "NEXT_ASSEMBLY_USAGE_OCCURRENCE":
            if self.assembly:
                self._add_occurrence(record)
        elif entity == "PRESENTATION_LAYER_ASSIGNMENT":
            self._add_layer(record)
        elif entity in UNIT_TYPES:
            self._add_unit(record.id, record.partials())
        elif entity in PMI_TYPES:
            self.pmi.add(record.id, entity, record.parameters())

    def _add_complex(self, record: Record) -> None:
        partials = record.partials()
        context = partials.get("GLOBAL_UNIT_ASSIGNED_CONTEXT")
        if context:
            self.context_units.append(_references(context[0]))
        if UNIT_TYPES.intersection(partials):
            self._add_unit(record.id, partials)
        if PMI_PARTIALS.intersection(partials):
            self.pmi.add_complex(record.id, partials)
        for entity, parameters in partials.items():
            if entity in PRODUCT_DEFINITION_TYPES:
                self._store_link(self.definitions, record.id, parameters, 2)
            elif entity in FORMATION_TYPES:
                self._store_link(self.formations, record.id, parameters, 2)
            if entity in TOPOLOGY_KINDS:
                self.topology[TOPOLOGY_KINDS[entity]] += 1

    def _add_product(self, record: Record) -> None:
        parameters = record.parameters()
        self.products[record.id] = _Product(
            id=_string(parameters, 0), name=_string(parameters, 1),
            description=_string(parameters, 2),
        )

    def _link(self, links: dict[int, int], record: Record, index: int) -> None:
        self._store_link(links, record.id, record.parameters(), index)

    @staticmethod
    def _store_link(links: dict[int, int], record_id: int, parameters: list[Value],
                    index: int) -> None:
        target = parameters[index] if index < len(parameters) else None
        if isinstance(target, Reference):
            links[record_id] = target.id

    def _add_occurrence(self, record: Record) -> None:
        parameters = record.parameters()
        parent = parameters[3] if len(parameters) > 4 else None
        child = parameters[4] if len(parameters) > 4 else None
        if not isinstance(parent, Reference) or not isinstance(child, Reference):
            raise CorruptFile(
                f"line {record.line}: NEXT_ASSEMBLY_USAGE_OCCURRENCE #{record.id} does not "
                "reference its two product definitions"
            )
        self.occurrences.append((parent.id, child.id))

    def _add_layer(self, record: Record) -> None:
        parameters = record.parameters()
        items = parameters[2] if len(parameters) > 2 else None
        self.layers.append(Layer(
            name=_string(parameters, 0), color=None, linetype=None, is_on=True,
            is_frozen=False, is_locked=False,
            entity_count=len(items) if isinstance(items, list) else 0,
        ))

    def _add_body(self, record: Record, entity: str) -> None:
        self.bodies_seen += 1
        if len(self.bodies) < MAX_ENTITIES:
            parameters = record.parameters()
            self.bodies.append({"id": record.id, "type": entity, "name": _string(parameters, 0)})

    def _add_unit(self, record_id: int, partials: dict[str, list[Value]]) -> None:
        unit = _unit(partials)
        if unit is not None:
            self.unit_names[record_id] = unit

    # --- results -----------------------------------------------------------------------------

    def product_list(self, warnings: list[str]) -> list[dict[str, str]]:
        if len(self.products) > MAX_PRODUCTS:
            warnings.append(f"products lists the first {MAX_PRODUCTS} of {len(self.products)}")
        return [
            {"id": product.id, "name": product.name, "description": product.description}
            for product in list(self.products.values())[:MAX_PRODUCTS]
        ]

    def units(self, warnings: list[str]) -> dict[str, str]:
        used: dict[str, Counter[str]] = defaultdict(Counter)
        for references in self.context_units:
            for reference in references:
                if reference in self.unit_names:
                    kind, name = self.unit_names[reference]
                    used[kind][name] += 1
        if not used:
            # Without a representation context, any declared unit is better than none.
            for kind, name in self.unit_names.values():
                used[kind][name] += 1
        units = {kind: names.most_common(1)[0][0] for kind, names in sorted(used.items())}
        for kind, names in used.items():
            if len(names) > 1:
                listed = ", ".join(f"{name} ({count})" for name, count in names.most_common())
                warnings.append(f"representation contexts mix {kind} units: {listed}")
        if "length" not in units:
            warnings.append("no length unit found")
        return units

    def assembly_tree(self, warnings: list[str]) -> list[dict[str, Any]]:
        product_of: dict[int, int] = {}
        for definition, formation in self.definitions.items():
            product = self.formations.get(formation)
            if product is not None and product in self.products:
                product_of[definition] = product
        children: dict[int, Counter[int]] = defaultdict(Counter)
        is_child: set[int] = set()
        unresolved = 0
        for parent_definition, child_definition in self.occurrences:
            parent = product_of.get(parent_definition)
            child = product_of.get(child_definition)
            if parent is None or child is None:
                unresolved += 1
                continue
            children[parent][child] += 1
            is_child.add(child)
        if unresolved:
            warnings.append(
                f"{unresolved} assembly occurrence(s) point at a product definition that does "
                "not lead to a PRODUCT; they are left out of the tree"
            )
        builder = _TreeBuilder(self.products, children)
        roots = [builder.node(product, 1, ()) for product in self.products if product not in is_child]
        if children and not roots:
            warnings.append("the assembly has no top-level product (every product is a child)")
        if builder.truncated:
            warnings.append(f"the assembly tree was cut at {MAX_ASSEMBLY_NODES} nodes")
        if builder.cycles:
            warnings.append("the assembly refers to itself (a cycle); the cycle was cut")
        return roots


class _TreeBuilder:
    """Expands the product graph into a tree, bounded in size and depth, cutting cycles."""

    def __init__(self, products: dict[int, _Product], children: dict[int, Counter[int]]) -> None:
        self.products = products
        self.children = children
        self.nodes = 0
        self.truncated = False
        self.cycles = False

    def node(self, product: int, quantity: int, path: tuple[int, ...]) -> dict[str, Any]:
        self.nodes += 1
        item = self.products[product]
        below: list[dict[str, Any]] = []
        path = (*path, product)
        for child, count in self.children.get(product, Counter()).items():
            if child in path:
                self.cycles = True
                continue
            if self.nodes >= MAX_ASSEMBLY_NODES or len(path) >= MAX_ASSEMBLY_DEPTH:
                self.truncated = True
                break
            below.append(self.node(child, count, path))
        return {"id": item.id, "name": item.name, "quantity": quantity, "children": below}


# --- values ----------------------------------------------------------------------------------


def _string(parameters: list[Value], index: int) -> str:
    value = parameters[index] if index < len(parameters) else None
    return value if isinstance(value, str) else ""


def _references(value: Value) -> list[int]:
    if not isinstance(value, list):
        return []
    return [item.id for item in value if isinstance(item, Reference)]


def _unit(partials: dict[str, list[Value]]) -> tuple[str, str] | None:
    """``(kind, name)`` of a unit instance, e.g. ``("length", "millimetre")``."""
    kind = next((UNIT_KINDS[name] for name in partials if name in UNIT_KINDS), None)
    si = partials.get("SI_UNIT")
    if si is not None and len(si) >= 2:
        # As a partial SI_UNIT holds (prefix, name); written alone it leads with dimensions.
        prefix, name = si[-2], si[-1]
        if not isinstance(name, Enumeration):
            return None
        unit_name = si_unit_name(prefix.name if isinstance(prefix, Enumeration) else None,
                                 name.name)
        kind = kind or SI_KINDS.get(name.name)
        return (kind, unit_name) if kind else None
    converted = partials.get("CONVERSION_BASED_UNIT")
    if converted and isinstance(converted[0], str) and kind:
        return kind, converted[0].strip().lower()
    return None


# --- optional geometry -----------------------------------------------------------------------


def _geometry(path: Path, warnings: list[str], errors: list[str]) -> dict[str, Any] | None:
    """Bounding box and volume in millimetres by OpenCASCADE, when the extra is installed."""
    try:
        from OCP.Bnd import Bnd_Box
        from OCP.BRepBndLib import BRepBndLib
        from OCP.BRepGProp import BRepGProp
        from OCP.GProp import GProp_GProps
        from OCP.IFSelect import IFSelect_RetDone
        from OCP.STEPControl import STEPControl_Reader
    except ImportError:
        warnings.append(GEOMETRY_EXTRA_HINT)
        return None
    reader = STEPControl_Reader()
    if reader.ReadFile(str(path)) != IFSelect_RetDone:
        errors.append("OpenCASCADE could not read the file; no bounding box or volume")
        return None
    reader.TransferRoots()
    shape = reader.OneShape()
    if shape.IsNull():
        warnings.append("the file holds no shape; no bounding box or volume")
        return None
    box = Bnd_Box()
    BRepBndLib.Add_s(shape, box, True)
    properties = GProp_GProps()
    BRepGProp.VolumeProperties_s(shape, properties)
    bounding_box = None
    if not box.IsVoid():
        # The triangulation-based box carries a small gap; round it away.
        low, high = box.CornerMin(), box.CornerMax()
        bounding_box = {
            "min": [_rounded(low.X()), _rounded(low.Y()), _rounded(low.Z())],
            "max": [_rounded(high.X()), _rounded(high.Y()), _rounded(high.Z())],
        }
    return {"bounding_box": bounding_box, "volume": _rounded(properties.Mass()),
            "unit": "millimetre"}


def _rounded(number: float) -> float:
    # Adding 0.0 turns the -0.0 that rounding a tiny negative gap gives into 0.0.
    return round(number, 6) + 0.0


__all__ = ["Options", "application_protocol", "extract", "si_unit_name"]
