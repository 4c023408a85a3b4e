"""IFC (IFC2X3, IFC4, IFC4X3) extraction with ifcopenshell.

ifcopenshell opens a truncated or garbled file as a nearly empty model without complaint, so
the file is checked first with our own ISO 10303-21 reader: it must be a physical file whose
FILE_SCHEMA is an IFC schema (a STEP part file renamed ``.ifc`` is refused, naming what it
is), it must end with ``END-ISO-10303-21;``, and the model must hold exactly one IfcProject.
Records that ifcopenshell could not parse are listed under ``errors``.

Result keys, besides those of every CAD result:

- ``schema``: ``IFC2X3``, ``IFC4`` or ``IFC4X3``, the schema the file was read with: a variant
  ifcopenshell does not name (``IFC2X_FINAL``, ``IFC4RC4``...) is read with the nearest one it
  knows (``ifc_schema``, ``ifc_source``); ``metadata`` holds the header (file name, time stamp,
  author, organization, preprocessor, application), the project's name, the authoring
  applications recorded in the model, ``file_schema`` and ``schema_used``,
  ``records_not_parsed`` (counted when a corrected copy was read) and ``text_encoding`` (set when
  8-bit strings were decoded as Shift-JIS, UTF-8 or raw ISO 8859-1, see ``ifc_text``);
- ``units``: project unit names by kind, e.g. ``{"length": "millimetre", "plane_angle":
  "degree"}``;
- ``element_counts``: IfcElement instances by exact class (``{"IfcWall": 8}``); with the
  ``element_types`` option, only instances of those classes (and their subclasses), and a
  listed class with no instance counts 0;
- ``spatial_structure`` (option ``spatial``): the spatial tree from the IfcProject down
  (sites, buildings, storeys, spaces, IFC4X3 facilities), each node ``{type, name,
  global_id, elevation, element_count, element_counts, children}``, where the counts are of
  the elements contained directly in that node; children are ordered by elevation (storeys
  bottom-up), then by name;
- ``property_sets`` (option ``properties``): aggregated per element class and property set,
  ``{"IfcWall": {"Pset_WallCommon": {"element_count": 8, "properties": {"FireRating":
  {"count": 8, "values": {"REI60": 8}, "values_left_out": 0}}}}}``: how many elements carry
  each distinct value (sets inherited from the element's type included); past 20 distinct
  values a property's further values are only counted in ``values_left_out``;
- ``quantities`` (option ``quantities``): the same per quantity set, each quantity as
  ``{count, sum, min, max}`` in the project units (``NetVolume`` sum = total volume);
- ``layers``: IfcPresentationLayerAssignment names with the number of items assigned;
- ``entities``: the first 1,000 elements ``{id, type, global_id, name, container}``;
- ``geometry_summary``: shape representations by representation type (SweptSolid, Brep...).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from pgqueue.errors import CorruptFile, InvalidOptions, UnsupportedFormat
from pgqueue.extractors.ifc_schema import is_ifc_schema
from pgqueue.extractors.ifc_source import Source, ifc_source
from pgqueue.extractors.ifc_text import ENCODING_NAMES
from pgqueue.extractors.options import OptionsModel, parse_options
from pgqueue.extractors.results import Layer, cad_result, geometry_summary
from pgqueue.extractors.step import application_protocol, si_unit_name
from pgqueue.extractors.step_reader import Header, has_end_marker, read_header

MAX_ENTITIES = 1000
MAX_LAYERS = 1000
MAX_SPATIAL_NODES = 2000
MAX_SPATIAL_DEPTH = 32
MAX_PROPERTY_VALUES = 20
MAX_PROPERTIES_PER_SET = 200
MAX_VALUE_CHARS = 200
MAX_PARSE_ERRORS = 20
MAX_ELEMENT_TYPES = 100

UNIT_KINDS = {
    "PLANEANGLEUNIT": "plane_angle",
    "SOLIDANGLEUNIT": "solid_angle",
    "THERMODYNAMICTEMPERATUREUNIT": "thermodynamic_temperature",
    "ELECTRICCURRENTUNIT": "electric_current",
    "LUMINOUSINTENSITYUNIT": "luminous_intensity",
    "AMOUNTOFSUBSTANCEUNIT": "amount_of_substance",
    "ABSORBEDDOSEUNIT": "absorbed_dose",
    "ELECTRICVOLTAGEUNIT": "electric_voltage",
    "LUMINOUSFLUXUNIT": "luminous_flux",
}


class Options(OptionsModel):
    """Options of ``ifc`` jobs."""

    properties: bool = Field(True, description="Aggregate property sets per IFC class.")
    quantities: bool = Field(True, description="Aggregate quantity sets (count, sum, min, max).")
    spatial: bool = Field(True, description="Project > sites > buildings > storeys with counts.")
    element_types: list[str] | None = Field(
        None, description="Only these IFC classes in counts and sets (e.g. IfcWall). Unset: all."
    )

    @field_validator("element_types")
    @classmethod
    def _bounded(cls, value: list[str] | None) -> list[str] | None:
        # Class names are checked against the file's schema once it is known.
        if value is not None and not 1 <= len(value) <= MAX_ELEMENT_TYPES:
            raise ValueError(f"give 1 to {MAX_ELEMENT_TYPES} IFC class names, or leave it out")
        return value


def extract(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    chosen = parse_options(Options, options)
    header = _check_file(path)
    with ifc_source(path, header) as source:
        return _extract(source, header, chosen)


def _extract(source: Source, header: Header, chosen: Options) -> dict[str, Any]:
    element_types = _element_types(chosen.element_types, source.schema)

    import ifcopenshell  # heavy: only in the process that runs an IFC job

    ifcopenshell.get_log()  # empties the parser log, so what follows is this file's
    try:
        model = ifcopenshell.open(str(source.path))
    except ifcopenshell.SchemaError as exc:
        raise UnsupportedFormat(f"ifcopenshell cannot read this IFC schema: {exc}") from None
    except (OSError, RuntimeError) as exc:
        raise CorruptFile(f"ifcopenshell cannot read the file: {exc}") from None
    parse_errors = [
        _without_log_prefix(line) for line in ifcopenshell.get_log().splitlines()
        if line.startswith("[error]")
    ]
    not_parsed = None
    if source.record_count is not None:
        not_parsed = max(0, source.record_count - len(model.entity_names()))
    projects = model.by_type("IfcProject")
    if len(projects) != 1:
        raise CorruptFile(
            f"the file holds {len(projects)} IfcProject instances; a whole IFC file has exactly "
            f"one (is it truncated or not a building model?){_schema_note(source, not_parsed)}"
        )
    if (parse_errors or not_parsed) and not model.by_type("IfcSpatialStructureElement"):
        raise CorruptFile(
            f"ifcopenshell could not parse {not_parsed or len(parse_errors)} record(s) and "
            f"found no site, building or storey{_schema_note(source, not_parsed)}; first "
            f"problem: {parse_errors[0] if parse_errors else 'none logged'}"
        )
    try:
        result = _facts(model, projects[0], chosen, element_types)
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        if not parse_errors and not not_parsed:
            raise  # a well-formed model that trips us is our bug: let it be seen and retried
        raise CorruptFile(
            f"the model is inconsistent ({exc}); ifcopenshell could not parse "
            f"{not_parsed or len(parse_errors)} record(s){_schema_note(source, not_parsed)}"
        ) from None
    result["metadata"] = _metadata(header, model, projects[0])
    result["metadata"].update(
        file_schema=source.file_schema, schema_used=source.schema,
        records_not_parsed=not_parsed, text_encoding=source.encoding,
    )
    result["warnings"][:0] = _source_warnings(source, not_parsed)
    if parse_errors:
        result["errors"] = parse_errors[:MAX_PARSE_ERRORS]
        result["warnings"].append(
            f"ifcopenshell skipped what it could not parse ({len(parse_errors)} problem(s)); "
            "counts may be incomplete"
        )
    return result


def _schema_note(source: Source, not_parsed: int | None) -> str:
    if source.schema == source.file_schema:
        return ""
    return (f" (FILE_SCHEMA {source.file_schema} read as {source.schema}; {not_parsed} record(s) "
            "did not parse)")


def _source_warnings(source: Source, not_parsed: int | None) -> list[str]:
    warnings = []
    if source.schema != source.file_schema:
        warnings.append(
            f"FILE_SCHEMA {source.file_schema} is not a schema ifcopenshell reads; read with "
            f"{source.schema}, the nearest it knows: {not_parsed} of {source.record_count} "
            "record(s) did not parse"
        )
    if source.encoding is not None:
        warnings.append(
            f"{source.strings_decoded} string(s) hold {ENCODING_NAMES[source.encoding]} bytes "
            "instead of the standard's \\X2\\ escapes; decoded as such"
        )
    if source.unidentified_strings:
        warnings.append(
            f"{source.unidentified_strings} string(s) hold bytes 0x80-0x9F that are neither "
            "ISO 8859-1 text, UTF-8 nor Shift-JIS; kept as ifcopenshell reads them"
        )
    return warnings


def _facts(
    model: Any, project: Any, chosen: Options, element_types: tuple[str, ...] | None
) -> dict[str, Any]:
    elements = _elements(model, element_types)
    result = cad_result()
    warnings: list[str] = result["warnings"]
    result.update(
        schema=model.schema,
        units=_units(project),
        element_counts=_element_counts(elements, element_types),
        spatial_structure=None,
    )
    if chosen.spatial:
        tree = _SpatialTree(element_types)
        result["spatial_structure"] = tree.node(project, 0)
        if tree.truncated:
            warnings.append(f"the spatial structure was cut at {MAX_SPATIAL_NODES} nodes")
    result["property_sets"], result["quantities"] = _property_summaries(
        elements, chosen.properties, chosen.quantities, warnings
    )
    result["layers"] = _layers(model, warnings)
    result["entities"] = _entities(elements, warnings)
    result["geometry_summary"] = geometry_summary(dict(Counter(
        str(item.RepresentationType) for item in model.by_type("IfcShapeRepresentation")
        if item.RepresentationType
    )))
    return result


# --- checks before ifcopenshell --------------------------------------------------------------


def _check_file(path: Path) -> Header:
    with open(path, "rb") as stream:
        start = stream.read(512)
    if not start:
        raise CorruptFile("empty file")
    if start.startswith(b"PK\x03\x04"):
        raise UnsupportedFormat(
            "this is a ZIP archive (an .ifczip?); unzip it and enqueue the .ifc file inside"
        )
    if start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise UnsupportedFormat("this is XML (ifcXML?); only IFC-SPF (.ifc) files are supported")
    header = read_header(path)
    names = header.schema_names
    if not any(is_ifc_schema(name) for name in names):
        protocols = [(name, application_protocol(name)) for name in names]
        for name, protocol in protocols:
            if protocol is not None:
                raise UnsupportedFormat(
                    f"this is a STEP file ({protocol}, FILE_SCHEMA {name}), not IFC; enqueue "
                    "it as format step"
                )
        raise UnsupportedFormat(f"FILE_SCHEMA {', '.join(names)} is not an IFC schema")
    if not has_end_marker(path):
        raise CorruptFile(
            "the file is truncated: it does not end with END-ISO-10303-21; (an incomplete "
            "upload or copy?)"
        )
    return header


def _element_types(requested: list[str] | None, schema_name: str) -> tuple[str, ...] | None:
    """Canonical names of the requested classes, each a subclass of IfcProduct in the schema."""
    if requested is None:
        return None
    from ifcopenshell import ifcopenshell_wrapper

    schema = ifcopenshell_wrapper.schema_by_name(schema_name)
    canonical: list[str] = []
    for name in requested:
        try:
            declaration = schema.declaration_by_name(name)
        except RuntimeError:
            raise InvalidOptions(
                f"option 'element_types': {name!r} is not a class of {schema_name}"
            ) from None
        if not _is_product(declaration):
            raise InvalidOptions(
                f"option 'element_types': {name!r} is not a product class (IfcWall, IfcDoor, "
                f"IfcSpace...) of {schema_name}"
            )
        if declaration.name() not in canonical:
            canonical.append(declaration.name())
    return tuple(canonical)


def _is_product(declaration: Any) -> bool:
    if not hasattr(declaration, "supertype"):
        return False  # a type, enumeration or select, not an entity
    while declaration is not None:
        if declaration.name() == "IfcProduct":
            return True
        declaration = declaration.supertype()
    return False


# --- model facts -----------------------------------------------------------------------------


def _elements(model: Any, element_types: tuple[str, ...] | None) -> list[Any]:
    if element_types is None:
        return list(model.by_type("IfcElement"))
    chosen: dict[int, Any] = {}
    for name in element_types:
        for element in model.by_type(name):
            chosen[element.id()] = element
    return sorted(chosen.values(), key=lambda element: element.id())


def _element_counts(elements: list[Any], element_types: tuple[str, ...] | None) -> dict[str, int]:
    counts = Counter(element.is_a() for element in elements)
    for name in element_types or ():
        if not any(element.is_a(name) for element in elements):
            counts[name] = 0
    return dict(sorted(counts.items()))


def _units(project: Any) -> dict[str, str]:
    units: dict[str, str] = {}
    assignment = project.UnitsInContext
    if assignment is None or not assignment.is_a("IfcUnitAssignment"):
        return units
    for unit in assignment.Units or ():
        unit_type = getattr(unit, "UnitType", None)
        if unit.is_a("IfcMonetaryUnit"):
            units["monetary"] = str(unit.Currency)
            continue
        if not unit_type or unit.is_a("IfcDerivedUnit"):
            continue
        kind = UNIT_KINDS.get(unit_type, unit_type.removesuffix("UNIT").lower())
        if unit.is_a("IfcSIUnit"):
            units[kind] = si_unit_name(unit.Prefix, unit.Name)
        elif unit.is_a("IfcConversionBasedUnit") and unit.Name:
            units[kind] = str(unit.Name).strip().lower()
    return dict(sorted(units.items()))


class _SpatialTree:
    """The decomposition tree of spatial elements, bounded in size and depth."""

    def __init__(self, element_types: tuple[str, ...] | None) -> None:
        self.element_types = element_types
        self.nodes = 0
        self.truncated = False

    def node(self, item: Any, depth: int) -> dict[str, Any]:
        self.nodes += 1
        contained = [
            element
            for relation in getattr(item, "ContainsElements", ()) or ()
            for element in relation.RelatedElements
            if _wanted(element, self.element_types)
        ]
        counts = Counter(element.is_a() for element in contained)
        children: list[dict[str, Any]] = []
        for child in _spatial_children(item):
            if self.nodes >= MAX_SPATIAL_NODES or depth >= MAX_SPATIAL_DEPTH:
                self.truncated = True
                break
            children.append(self.node(child, depth + 1))
        # The file's order is arbitrary (relations are sets): storeys go bottom-up, then names.
        children.sort(key=lambda node: (node["elevation"] is None, node["elevation"] or 0.0,
                                        node["name"] or ""))
        return {
            "type": item.is_a(),
            "name": item.Name,
            "global_id": item.GlobalId,
            "elevation": _elevation(item),
            "element_count": len(contained),
            "element_counts": dict(sorted(counts.items())),
            "children": children,
        }


def _spatial_children(item: Any) -> list[Any]:
    """Spatial elements aggregated below ``item``, and those some writers (IFC Engine DLL)
    place in it as contained elements instead (an IfcSpace in its storey)."""
    found: dict[int, Any] = {}
    for relation in item.IsDecomposedBy or ():
        for child in relation.RelatedObjects:
            if _is_spatial(child):
                found.setdefault(child.id(), child)
    for relation in getattr(item, "ContainsElements", ()) or ():
        for child in relation.RelatedElements:
            if _is_spatial(child):
                found.setdefault(child.id(), child)
    return list(found.values())


def _wanted(element: Any, element_types: tuple[str, ...] | None) -> bool:
    if element_types is None:
        return bool(element.is_a("IfcElement"))
    return any(element.is_a(name) for name in element_types)


def _is_spatial(item: Any) -> bool:
    # IFC2X3 has only IfcSpatialStructureElement; IFC4 adds IfcSpatialElement above it.
    return bool(item.is_a("IfcSpatialStructureElement") or item.is_a("IfcSpatialElement"))


def _elevation(item: Any) -> float | None:
    if item.is_a("IfcBuildingStorey"):
        value = item.Elevation
    elif item.is_a("IfcSite"):
        value = item.RefElevation
    else:
        return None
    return float(value) if isinstance(value, int | float) else None


def _property_summaries(
    elements: list[Any], properties: bool, quantities: bool, warnings: list[str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Aggregate property and quantity sets per element class (see the module docstring)."""
    import ifcopenshell.util.element

    property_sets = _PropertyAggregate() if properties else None
    quantity_sets = _QuantityAggregate() if quantities else None
    for element in elements:
        cls = element.is_a()
        if property_sets is not None:
            found = ifcopenshell.util.element.get_psets(element, psets_only=True)
            for set_name, values in found.items():
                property_sets.add(cls, set_name, values)
        if quantity_sets is not None:
            found = ifcopenshell.util.element.get_psets(element, qtos_only=True)
            for set_name, values in found.items():
                quantity_sets.add(cls, set_name, values)
    if property_sets is None:
        return None, quantity_sets.result() if quantity_sets else None
    warnings.extend(property_sets.warnings())
    return property_sets.result(), quantity_sets.result() if quantity_sets else None


class _PropertyAggregate:
    """Per class and set: elements carrying it, and per property the count of each value."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.values_cut = 0
        self.properties_cut = 0

    def add(self, cls: str, set_name: str, values: dict[str, Any]) -> None:
        entry = self.sets[cls].setdefault(set_name, {"element_count": 0, "properties": {}})
        entry["element_count"] += 1
        table: dict[str, dict[str, Any]] = entry["properties"]
        for name, value in values.items():
            text = _display(value)
            if name == "id" or text is None:
                continue
            if name not in table and len(table) >= MAX_PROPERTIES_PER_SET:
                self.properties_cut += 1
                continue
            summary = table.setdefault(name, {"count": 0, "values": {}, "values_left_out": 0})
            summary["count"] += 1
            counts: dict[str, int] = summary["values"]
            if text in counts or len(counts) < MAX_PROPERTY_VALUES:
                counts[text] = counts.get(text, 0) + 1
            else:
                # Identifiers and free text rarely repeat: past the limit only count them.
                summary["values_left_out"] += 1
                self.values_cut += 1

    def warnings(self) -> list[str]:
        notes = []
        if self.values_cut:
            notes.append(f"property_sets keeps {MAX_PROPERTY_VALUES} distinct values per "
                         f"property; {self.values_cut} value(s) are only counted")
        if self.properties_cut:
            notes.append(f"property_sets keeps {MAX_PROPERTIES_PER_SET} properties per set; "
                         f"{self.properties_cut} were left out")
        return notes

    def result(self) -> dict[str, Any]:
        return {cls: dict(sorted(sets.items())) for cls, sets in sorted(self.sets.items())}


class _QuantityAggregate:
    """Per class and quantity set: count, sum, min and max of each numeric quantity."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    def add(self, cls: str, set_name: str, values: dict[str, Any]) -> None:
        entry = self.sets[cls].setdefault(set_name, {"element_count": 0, "quantities": {}})
        entry["element_count"] += 1
        table: dict[str, dict[str, float]] = entry["quantities"]
        for name, value in values.items():
            if name == "id" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if name not in table and len(table) >= MAX_PROPERTIES_PER_SET:
                continue
            stats = table.setdefault(name, {"count": 0, "sum": 0.0, "min": value, "max": value})
            stats["count"] += 1
            stats["sum"] += value
            stats["min"] = min(stats["min"], value)
            stats["max"] = max(stats["max"], value)

    def result(self) -> dict[str, Any]:
        for sets in self.sets.values():
            for entry in sets.values():
                for stats in entry["quantities"].values():
                    stats["sum"] = round(stats["sum"], 9)  # hide float noise of long sums
        return {cls: dict(sorted(sets.items())) for cls, sets in sorted(self.sets.items())}


def _display(value: Any) -> str | None:
    """A property value as the text it is counted under; ``None`` for no or complex values."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        parts = [_display(item) for item in value]
        return _clip(", ".join(part for part in parts if part is not None))
    return _clip(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _layers(model: Any, warnings: list[str]) -> list[Layer]:
    assignments = model.by_type("IfcPresentationLayerAssignment")
    if len(assignments) > MAX_LAYERS:
        warnings.append(f"layers lists the first {MAX_LAYERS} of {len(assignments)}")
    layers: list[Layer] = []
    for assignment in assignments[:MAX_LAYERS]:
        styled = assignment.is_a("IfcPresentationLayerWithStyle")
        layers.append(Layer(
            name=str(assignment.Name or ""), color=None, linetype=None,
            # Logical attributes may be UNKNOWN: only an explicit false turns a layer off.
            is_on=not styled or assignment.LayerOn is not False,
            is_frozen=styled and assignment.LayerFrozen is True,
            is_locked=styled and assignment.LayerBlocked is True,
            entity_count=len(assignment.AssignedItems or ()),
        ))
    return layers


def _entities(elements: list[Any], warnings: list[str]) -> list[dict[str, Any]]:
    import ifcopenshell.util.element

    if len(elements) > MAX_ENTITIES:
        warnings.append(f"entities lists the first {MAX_ENTITIES} of {len(elements)} elements")
    entities = []
    for element in elements[:MAX_ENTITIES]:
        container = ifcopenshell.util.element.get_container(element)
        entities.append({
            "id": element.id(),
            "type": element.is_a(),
            "global_id": element.GlobalId,
            "name": element.Name,
            "container": container.Name if container is not None else None,
        })
    return entities


def _metadata(header: Header, model: Any, project: Any) -> dict[str, Any]:
    applications = _texts(
        f"{application.ApplicationFullName or ''} {application.Version or ''}".strip()
        for application in model.by_type("IfcApplication")
    )
    return {
        "file_name": header.name,
        "timestamp": header.time_stamp,
        "author": _joined(header.author),
        "organization": _joined(header.organization),
        "preprocessor": header.preprocessor_version or None,
        "application": header.originating_system or None,
        "authorization": header.authorization or None,
        "description": _joined(header.description),
        "schema_identifier": model.schema_identifier,
        "project_name": project.Name,
        "project_description": project.Description,
        "applications": applications[:10],
    }


def _texts(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _joined(values: Iterable[str]) -> str | None:
    return ", ".join(_texts(value.strip() for value in values)) or None


def _without_log_prefix(line: str) -> str:
    # "[error] [2024-01-01 10:00:00] message": the time of parsing says nothing to a user.
    parts = line.split("] ", 2)
    return parts[-1] if len(parts) == 3 else line


__all__ = ["Options", "extract"]
