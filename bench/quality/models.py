"""IFC and STEP extraction checked against ifcopenshell and the STEP text, on real files.

``ifc_checks`` opens each file with ifcopenshell itself (a schema variant under each schema
it names, keeping the readings with the fewest parse errors) and compares what pgqueue
extracted: the file's schema and the one used, project, storeys and their names, walls by
class, spaces, elements per storey, property and quantity sets per class, the length unit.
``step_checks`` reads the STEP text with a few regular expressions, independent of pgqueue's
reader: schema names, products, assembly edges with quantities, the length unit, and the AP242
PMI (count, nominal values, tolerance bounds, tolerance magnitudes).
``tests/extractors/test_real_models.py`` runs the same checks, one test per file.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.quality import Score

Check = tuple[bool, str]

NAMED_IFC_SCHEMAS = ("IFC2X3", "IFC4", "IFC4X3_ADD2")
IFC_SUFFIXES = (".ifc",)
STEP_SUFFIXES = (".stp", ".step")


def real_files(real_dir: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(path for path in real_dir.iterdir() if path.suffix.lower() in suffixes)


def run(real_dir: Path) -> list[Score]:
    from pgqueue.extractors import ifc, step

    return [
        _score("ifc", real_files(real_dir, IFC_SUFFIXES), ifc.extract, ifc_checks),
        _score("step", real_files(real_dir, STEP_SUFFIXES), step.extract, step_checks),
    ]


def _score(fmt: str, paths: list[Path], extract: Callable[..., dict[str, Any]],
           checks: Callable[[Path, dict[str, Any]], list[Check]]) -> Score:
    score = Score(fmt)
    for path in paths:
        score.files += 1
        started = time.perf_counter()
        try:
            result = extract(path, {})
        except Exception as exc:  # a refusal is a failed check, and the run goes on
            score.check(False, f"{path.name}: refused: {exc}")
            continue
        score.seconds.append(time.perf_counter() - started)
        for passed, what in checks(path, result):
            score.check(passed, f"{path.name}: {what}")
    return score


def _same(what: str, extracted: object, expected: object) -> Check:
    return extracted == expected, f"{what}: extracted {extracted!r}, expected {expected!r}"


# --- IFC against ifcopenshell ----------------------------------------------------------------


def file_schema(data: bytes) -> str:
    found = re.search(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", data)
    return found.group(1).decode("ascii", "replace").strip().upper() if found else ""


def reference_models(path: Path) -> tuple[list[str], Any]:
    """The schemas ifcopenshell reads the file with fewest errors under, and that model."""
    import ifcopenshell

    data = path.read_bytes()
    own = file_schema(data)
    if own in NAMED_IFC_SCHEMAS:
        return [own], ifcopenshell.open(str(path))
    readings: list[tuple[int, str, Any]] = []
    for schema in NAMED_IFC_SCHEMAS:
        text = re.sub(rb"FILE_SCHEMA\s*\(\s*\(\s*'[^']*'", f"FILE_SCHEMA(('{schema}'".encode(),
                      data, count=1).decode("latin-1")
        ifcopenshell.get_log()
        model = ifcopenshell.file.from_string(text)
        errors = ifcopenshell.get_log().count("[error]")
        readings.append((errors, schema, model))
    fewest = min(errors for errors, _, _ in readings)
    best = [(schema, model) for errors, schema, model in readings if errors == fewest]
    return [schema for schema, _ in best], best[0][1]


def as_text(value: Any) -> Any:
    """A name as the writer meant it: bytes 0x80-0x9F that ifcopenshell shows as characters
    are UTF-8 or Shift-JIS bytes (they are control codes in ISO 8859-1)."""
    if not isinstance(value, str) or not re.search("[\x80-\x9f]", value):
        return value
    try:
        data = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    for encoding in ("utf-8", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return value


def spatial_nodes(node: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    if node is None:
        return
    yield node
    for child in node["children"]:
        yield from spatial_nodes(child)


def ifc_checks(path: Path, result: dict[str, Any]) -> list[Check]:
    import ifcopenshell.util.element
    import ifcopenshell.util.unit

    schemas, model = reference_models(path)
    metadata = result["metadata"]
    nodes = list(spatial_nodes(result["spatial_structure"]))
    checks = [
        _same("file schema", metadata["file_schema"], file_schema(path.read_bytes())),
        (metadata["schema_used"] in schemas,
         f"schema used {metadata['schema_used']!r}, ifcopenshell reads best with {schemas}"),
        _same("project name", metadata["project_name"],
              as_text(model.by_type("IfcProject")[0].Name)),
        _same("storeys", sorted((node["global_id"], node["name"]) for node in nodes
                                if node["type"] == "IfcBuildingStorey"),
              sorted((storey.GlobalId, as_text(storey.Name))
                     for storey in model.by_type("IfcBuildingStorey"))),
        _same("walls by class",
              {name: count for name, count in result["element_counts"].items()
               if _is_a(model, name, "IfcWall")},
              dict(Counter(wall.is_a() for wall in model.by_type("IfcWall")))),
        _same("spaces", sum(node["type"] == "IfcSpace" for node in nodes),
              len(model.by_type("IfcSpace"))),
        _same("elements per storey",
              {node["global_id"]: node["element_count"] for node in nodes
               if node["type"] == "IfcBuildingStorey"},
              {storey.GlobalId: _contained(storey)
               for storey in model.by_type("IfcBuildingStorey")}),
    ]
    psets: Counter[tuple[str, str]] = Counter()
    qtos: Counter[tuple[str, str]] = Counter()
    for element in model.by_type("IfcElement"):
        for name in ifcopenshell.util.element.get_psets(element, psets_only=True):
            psets[element.is_a(), as_text(name)] += 1
        for name in ifcopenshell.util.element.get_psets(element, qtos_only=True):
            qtos[element.is_a(), as_text(name)] += 1
    checks.append(_same("property sets per class", _set_counts(result["property_sets"]),
                        dict(psets)))
    checks.append(_same("quantity sets per class", _set_counts(result["quantities"]),
                        dict(qtos)))
    unit = ifcopenshell.util.unit.get_project_unit(model, "LENGTHUNIT")
    expected_unit = ifcopenshell.util.unit.get_full_unit_name(unit) if unit else None
    extracted_unit = result["units"].get("length")
    checks.append(_same("length unit", _unit_key(extracted_unit), _unit_key(expected_unit)))
    return checks


def _is_a(model: Any, name: str, ancestor: str) -> bool:
    import ifcopenshell

    declaration: Any = ifcopenshell.schema_by_name(model.schema_identifier).declaration_by_name(
        name)
    while declaration is not None:
        if declaration.name() == ancestor:
            return True
        declaration = declaration.supertype()
    return False


def _contained(storey: Any) -> int:
    return sum(
        element.is_a("IfcElement")
        for relation in storey.ContainsElements or ()
        for element in relation.RelatedElements
    )


def _set_counts(sets: dict[str, Any] | None) -> dict[tuple[str, str], int]:
    return {
        (cls, name): entry["element_count"]
        for cls, by_name in (sets or {}).items() for name, entry in by_name.items()
    }


def _unit_key(name: str | None) -> str | None:
    return name.replace(" ", "").upper() if name else None


# --- STEP against its text -------------------------------------------------------------------

_RECORD = re.compile(rb"#(\d+)\s*=\s*((?:[^;']|'(?:[^']|'')*')*);")
_REFERENCE = re.compile(rb"#(\d+)")
_NUMBER = re.compile(rb"MEASURE\s*\(\s*([-+0-9.Ee]+)\s*\)")
_NOMINAL = re.compile(rb"'nominal value'", re.IGNORECASE)
_SIZES = rb"(?:DIMENSIONAL_SIZE|ANGULAR_SIZE|DIMENSIONAL_LOCATION|ANGULAR_LOCATION)"
_DIMENSION = re.compile(rb"(?:^|[\s()])" + _SIZES + rb"(?:_WITH_PATH)?\s*\(")
_GEOMETRIC = re.compile(
    rb"(?:^|[\s()])(?:GEOMETRIC|ANGULARITY|CIRCULAR_RUNOUT|COAXIALITY|CONCENTRICITY|"
    rb"CYLINDRICITY|FLATNESS|LINE_PROFILE|PARALLELISM|PERPENDICULARITY|POSITION|ROUNDNESS|"
    rb"STRAIGHTNESS|SURFACE_PROFILE|SYMMETRY|TOTAL_RUNOUT)_TOLERANCE\s*\("
)


def step_records(data: bytes) -> dict[int, bytes]:
    section = data[data.find(b"DATA;"):]
    return {int(match.group(1)): match.group(2).strip() for match in _RECORD.finditer(section)}


def _refs(text: bytes) -> list[int]:
    return [int(found) for found in _REFERENCE.findall(text)]


def _numbers(text: bytes) -> list[float]:
    return [float(found) for found in _NUMBER.findall(text)]


def _strings(text: bytes) -> list[str]:
    return [found.decode("latin-1") for found in re.findall(rb"'((?:[^']|'')*)'", text)]


def step_checks(path: Path, result: dict[str, Any]) -> list[Check]:
    data = path.read_bytes()
    records = step_records(data)
    schema_names = re.search(rb"FILE_SCHEMA\s*\(\s*\((.*?)\)\s*\)", data, re.DOTALL)
    expected_schemas = _strings(schema_names.group(1)) if schema_names else []
    by_type: dict[bytes, dict[int, bytes]] = {}
    for record_id, text in records.items():
        name = text.split(b"(", 1)[0].strip()
        by_type.setdefault(name, {})[record_id] = text
    products = by_type.get(b"PRODUCT", {})
    checks = [
        _same("schema names", result["header"]["schemas"], expected_schemas),
        _same("instances", result["metadata"]["instance_count"], len(records)),
        _same("products", [product["id"] for product in result["products"]],
              [_strings(text)[0] for text in list(products.values())[:1000]]),
        _same("assembly edges and quantities", _tree_edges(result["assembly"] or []),
              _step_edges(records, by_type)),
    ]
    lengths = _context_length_units(records)
    checks.append((result["units"].get("length") in lengths,
                   f"length unit {result['units'].get('length')!r}, contexts use {lengths}"))
    checks.extend(_pmi_checks(records, result["dimensions"]))
    return checks


def _tree_edges(roots: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """(parent, child, quantity) of every edge; product ids need not be unique, so a set."""
    edges: set[tuple[str, str, int]] = set()

    def walk(node: dict[str, Any]) -> None:
        for child in node["children"]:
            edges.add((node["id"], child["id"], child["quantity"]))
            walk(child)

    for root in roots:
        walk(root)
    return edges


def _step_edges(records: dict[int, bytes],
                by_type: dict[bytes, dict[int, bytes]]) -> set[tuple[str, str, int]]:
    def product_of(definition: int) -> int | None:
        formation = _refs(records.get(definition, b""))[:1]
        product = _refs(records.get(formation[0], b""))[:1] if formation else []
        return product[0] if product and records[product[0]].startswith(b"PRODUCT(") else None

    edges: Counter[tuple[int, int]] = Counter()
    for text in by_type.get(b"NEXT_ASSEMBLY_USAGE_OCCURRENCE", {}).values():
        parent, child = (product_of(reference) for reference in _refs(text)[:2])
        if parent is not None and child is not None:
            edges[parent, child] += 1
    return {
        (_strings(records[parent])[0], _strings(records[child])[0], count)
        for (parent, child), count in edges.items()
    }


def _context_length_units(records: dict[int, bytes]) -> list[str]:
    names = []
    for text in records.values():
        assigned = re.search(rb"GLOBAL_UNIT_ASSIGNED_CONTEXT\s*\(\s*\(([^)]*)\)", text)
        for unit in _refs(assigned.group(1)) if assigned else ():
            unit_text = records.get(unit, b"")
            if b"LENGTH_UNIT" not in unit_text:
                continue
            si = re.search(rb"SI_UNIT\s*\(\s*(?:\.(\w+)\.|\$)\s*,\s*\.(\w+)\.", unit_text)
            converted = re.search(rb"CONVERSION_BASED_UNIT\s*\(\s*'([^']*)'", unit_text)
            if si:
                prefix = (si.group(1) or b"").decode().lower()
                names.append(prefix + si.group(2).decode().lower())
            elif converted:
                names.append(converted.group(1).decode().strip().lower())
    return names


def _pmi_checks(records: dict[int, bytes], dimensions: list[dict[str, Any]]) -> list[Check]:
    features = sorted(
        record_id for record_id, text in records.items()
        if _DIMENSION.search(text) or _GEOMETRIC.search(text)
    )
    extracted = {entry["id"]: entry for entry in dimensions}
    checks = [_same("PMI dimensions and tolerances", sorted(extracted), features)]
    values: dict[int, float | None] = {}
    deviations: dict[int, tuple[float, float]] = {}
    for record_id, text in records.items():
        if text.startswith(b"DIMENSIONAL_CHARACTERISTIC_REPRESENTATION("):
            dimension, representation = _refs(text)[:2]
            items = _refs(records.get(representation, b"").split(b",", 1)[-1])
            nominal = {number for item in items if _NOMINAL.search(records.get(item, b""))
                       for number in _numbers(records[item])}
            values[dimension] = nominal.pop() if len(nominal) == 1 else None
        elif text.startswith(b"PLUS_MINUS_TOLERANCE("):
            bounds, dimension = _refs(text)[:2]
            limits = _refs(records.get(bounds, b""))
            if records.get(bounds, b"").startswith(b"TOLERANCE_VALUE(") and len(limits) == 2:
                low, high = (_numbers(records.get(limit, b"")) for limit in limits)
                if low and high:
                    deviations[dimension] = (low[0], high[0])
        elif _GEOMETRIC.search(text):
            tolerance = re.search(rb"TOLERANCE\s*\(\s*'(?:[^']|'')*'\s*,\s*'(?:[^']|'')*'\s*,"
                                  rb"\s*#(\d+)", text)
            magnitude = records.get(int(tolerance.group(1)), b"") if tolerance else b""
            numbers = _numbers(magnitude)
            values[record_id] = numbers[0] if numbers else None
    checks.append(_same("PMI values", {key: extracted[key]["value"] for key in values
                                       if key in extracted}, values))
    checks.append(_same("PMI tolerance bounds",
                        {key: (extracted[key].get("lower_deviation"),
                               extracted[key].get("upper_deviation"))
                         for key in deviations if key in extracted}, deviations))
    return checks


__all__ = ["file_schema", "ifc_checks", "real_files", "run", "step_checks"]
