"""The STEP extractor on hand-written AP203/AP214/AP242 files and on the sample corpus."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cad_fixtures import (
    INCH_UNITS,
    MILLIMETRE_UNITS,
    StepAssembly,
    corpus_file,
    corpus_files,
    step_file_text,
)

from pgqueue import extractors
from pgqueue.errors import CorruptFile, InvalidOptions, PermanentError, UnsupportedFormat
from pgqueue.extractors import step
from pgqueue.jobrun import to_json

SCHEMAS = {
    "AP203": "CONFIG_CONTROL_DESIGN",
    "AP214": "AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }",
    "AP242": "AP242_MANAGED_MODEL_BASED_3D_ENGINEERING_MIM_LF { 1 0 10303 442 1 1 4 }",
}


def gearbox(formation_type: str = "PRODUCT_DEFINITION_FORMATION") -> StepAssembly:
    """GEARBOX = 1 HOUSING + 2 SHAFT_ASSY; SHAFT_ASSY = 1 SHAFT + 2 BEARING; + a name with
    an escape, a ';' inside a description and a record spread over lines."""
    assembly = StepAssembly()
    top = assembly.product("GEARBOX", "Gearbox; complete", "top; level", formation_type)
    housing = assembly.product("HOUSING", "Geh\\X2\\00E4\\X0\\use", "cast", formation_type)
    shaft_assembly = assembly.product("SHAFT_ASSY", "Shaft assembly", "", formation_type)
    shaft = assembly.product("SHAFT", "Shaft", "it's long", formation_type)
    bearing = assembly.product("BEARING", "Bearing 6204", "", formation_type)
    assembly.use(top, housing, "1")
    assembly.use(top, shaft_assembly, "2")
    assembly.use(top, shaft_assembly, "3")
    assembly.use(shaft_assembly, shaft, "4")
    assembly.use(shaft_assembly, bearing, "5")
    assembly.use(shaft_assembly, bearing, "6")
    assembly.add("MANIFOLD_SOLID_BREP('housing body',#900)")
    assembly.add("PRESENTATION_LAYER_ASSIGNMENT('HIDDEN','lines',(#101,#102,\n#103))")
    return assembly


def write_step(tmp_path: Path, protocol: str, assembly: StepAssembly,
               units: str = MILLIMETRE_UNITS, name: str = "gearbox.stp") -> Path:
    path = tmp_path / name
    path.write_text(step_file_text(SCHEMAS[protocol], assembly.text(units)), newline="")
    return path


def tree_of(node: dict[str, Any]) -> tuple[str, int, tuple[Any, ...]]:
    """A node as (id, quantity, children), children sorted, for order-free comparison."""
    children = tuple(sorted(tree_of(child) for child in node["children"]))
    return node["id"], node["quantity"], children


EXPECTED_GEARBOX = (
    "GEARBOX", 1, (
        ("HOUSING", 1, ()),
        ("SHAFT_ASSY", 2, (("BEARING", 2, ()), ("SHAFT", 1, ()))),
    ),
)


@pytest.mark.parametrize("protocol", sorted(SCHEMAS))
def test_assembly_file_facts(tmp_path: Path, protocol: str) -> None:
    assembly = gearbox(
        "PRODUCT_DEFINITION_FORMATION_WITH_SPECIFIED_SOURCE" if protocol == "AP242"
        else "PRODUCT_DEFINITION_FORMATION"
    )
    result = step.extract(write_step(tmp_path, protocol, assembly), {})

    assert result["schema"] == protocol
    assert [tree_of(root) for root in result["assembly"]] == [EXPECTED_GEARBOX]
    assert result["products"] == [
        {"id": "GEARBOX", "name": "Gearbox; complete", "description": "top; level"},
        {"id": "HOUSING", "name": "Gehäuse", "description": "cast"},
        {"id": "SHAFT_ASSY", "name": "Shaft assembly", "description": ""},
        {"id": "SHAFT", "name": "Shaft", "description": "it's long"},
        {"id": "BEARING", "name": "Bearing 6204", "description": ""},
    ]
    assert result["units"] == {
        "length": "millimetre", "plane_angle": "radian", "solid_angle": "steradian",
    }
    assert result["layers"] == [{
        "name": "HIDDEN", "color": None, "linetype": None, "is_on": True, "is_frozen": False,
        "is_locked": False, "entity_count": 3,
    }]
    assert result["entities"] == [
        {"id": assembly.next_id - 1, "type": "MANIFOLD_SOLID_BREP", "name": "housing body"}
    ]
    assert result["geometry_summary"] == {"counts": {"solid": 1}, "total": 1}
    assert result["geometry"] is None
    assert result["warnings"] == []
    json.loads(to_json(result))  # storable as it is


def written_entity_counts(data: str) -> tuple[Counter[str], int]:
    """Entity types in hand-written data text (each partial of a complex instance) and the
    number of instances; the text has one record per ';' + newline."""
    counts = Counter[str]()
    records = [record for record in data.split(";\n") if record.strip()]
    for record in records:
        body = record.split("=", 1)[1].strip()
        if not body.startswith("("):
            counts[body.split("(", 1)[0]] += 1
            continue
        depth, word = 0, ""
        for character in body:  # a partial is the word right before a '(' at depth 1
            if character == "(":
                if depth == 1 and word:
                    counts[word] += 1
                depth, word = depth + 1, ""
            elif character == ")":
                depth -= 1
            elif depth == 1 and (character.isalnum() or character == "_"):
                word += character
            else:
                word = ""
    return counts, len(records)


def test_entity_counts_match_what_was_written(tmp_path: Path) -> None:
    assembly = gearbox()
    counts, instances = written_entity_counts(assembly.text(MILLIMETRE_UNITS))
    result = step.extract(write_step(tmp_path, "AP214", assembly), {})
    assert result["entity_counts"] == dict(sorted(counts.items()))
    assert counts["LENGTH_UNIT"] == 1 and counts["PRODUCT"] == 5  # the helper saw both kinds
    assert result["metadata"]["instance_count"] == instances
    assert result["metadata"]["product_count"] == 5


def test_header_and_metadata(tmp_path: Path) -> None:
    result = step.extract(write_step(tmp_path, "AP203", gearbox()), {})
    assert result["header"] == {
        "description": ["test part"],
        "implementation_level": "2;1",
        "name": "part.stp",
        "time_stamp": "2024-05-06T07:08:09",
        "author": ["Ada"],
        "organization": ["ACME; Inc."],
        "preprocessor": "pre 1.0",
        "originating_system": "CAD 9",
        "authorization": "",
        "schemas": ["CONFIG_CONTROL_DESIGN"],
    }
    metadata = result["metadata"]
    assert (metadata["file_name"], metadata["author"], metadata["organization"]) == (
        "part.stp", "Ada", "ACME; Inc."
    )
    assert (metadata["application"], metadata["preprocessor"]) == ("CAD 9", "pre 1.0")


def test_inch_and_degree_units(tmp_path: Path) -> None:
    result = step.extract(write_step(tmp_path, "AP203", gearbox(), INCH_UNITS), {})
    assert result["units"] == {"length": "inch", "plane_angle": "degree"}


def test_single_part_is_its_own_root(tmp_path: Path) -> None:
    assembly = StepAssembly()
    assembly.product("BRACKET", "Bracket")
    result = step.extract(write_step(tmp_path, "AP214", assembly), {})
    assert result["assembly"] == [
        {"id": "BRACKET", "name": "Bracket", "quantity": 1, "children": []}
    ]


def test_a_cycle_is_cut_and_reported(tmp_path: Path) -> None:
    assembly = StepAssembly()
    first = assembly.product("A", "A")
    second = assembly.product("B", "B")
    top = assembly.product("TOP", "Top")
    assembly.use(top, first, "1")
    assembly.use(first, second, "2")
    assembly.use(second, first, "3")
    result = step.extract(write_step(tmp_path, "AP214", assembly), {})
    assert [tree_of(root) for root in result["assembly"]] == [
        ("TOP", 1, (("A", 1, (("B", 1, ()),)),))
    ]
    assert any("cycle" in warning for warning in result["warnings"])


def test_occurrence_of_a_missing_definition_is_reported(tmp_path: Path) -> None:
    assembly = StepAssembly()
    top = assembly.product("TOP", "Top")
    assembly.use(top, 999, "1")
    result = step.extract(write_step(tmp_path, "AP214", assembly), {})
    assert result["assembly"][0]["children"] == []
    assert any("1 assembly occurrence" in warning for warning in result["warnings"])


def test_products_are_bounded(tmp_path: Path) -> None:
    assembly = StepAssembly()
    for index in range(step.MAX_PRODUCTS + 5):
        assembly.product(f"P{index}", f"Part {index}")
    result = step.extract(write_step(tmp_path, "AP214", assembly), {"assembly": False})
    assert len(result["products"]) == step.MAX_PRODUCTS
    assert result["metadata"]["product_count"] == step.MAX_PRODUCTS + 5
    assert f"first {step.MAX_PRODUCTS} of {step.MAX_PRODUCTS + 5}" in result["warnings"][0]


# --- options ---------------------------------------------------------------------------------


def test_assembly_option_off(tmp_path: Path) -> None:
    result = step.extract(write_step(tmp_path, "AP214", gearbox()), {"assembly": False})
    assert result["assembly"] is None
    assert len(result["products"]) == 5


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"assembly": "yes"}, "'assembly'"),
        ({"geometry": 1}, "'geometry'"),
        ({"colour": True}, "unknown option 'colour'"),
    ],
)
def test_invalid_options(tmp_path: Path, options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidOptions, match=named):
        step.extract(write_step(tmp_path, "AP214", gearbox()), options)


def test_geometry_without_the_extra_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes "import OCP..." fail as it does where the extra is not installed.
    for name in ["OCP", *(name for name in sys.modules if name.startswith("OCP."))]:
        monkeypatch.setitem(sys.modules, name, None)
    result = step.extract(write_step(tmp_path, "AP214", gearbox()), {"geometry": True})
    assert result["geometry"] is None
    assert "install pgqueue[geometry] for bounding box and volume" in result["warnings"]


def test_geometry_with_the_extra(tmp_path: Path) -> None:
    pytest.importorskip("OCP", reason="the optional geometry extra is not installed")
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox
    from OCP.IFSelect import IFSelect_RetDone
    from OCP.STEPControl import STEPControl_AsIs, STEPControl_Writer

    path = tmp_path / "box.step"
    writer = STEPControl_Writer()
    writer.Transfer(BRepPrimAPI_MakeBox(30.0, 20.0, 10.0).Shape(), STEPControl_AsIs)
    assert writer.Write(str(path)) == IFSelect_RetDone
    result = step.extract(path, {"geometry": True})
    geometry = result["geometry"]
    assert geometry["volume"] == pytest.approx(30 * 20 * 10, rel=1e-6)
    assert geometry["bounding_box"]["min"] == pytest.approx([0, 0, 0], abs=1e-4)
    assert geometry["bounding_box"]["max"] == pytest.approx([30, 20, 10], abs=1e-4)
    assert result["geometry_summary"]["counts"]["face"] == 6


# --- refused files ---------------------------------------------------------------------------


def test_ifc_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.step"
    path.write_text(step_file_text("IFC4", "#1=IFCPROJECT('0',$,'P',$,$,$,$,$,$);\n"))
    with pytest.raises(UnsupportedFormat, match="this is an IFC file; enqueue it as format ifc"):
        step.extract(path, {})


def test_unknown_schema_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cis2.stp"
    path.write_text(step_file_text("STRUCTURAL_FRAME_SCHEMA", "#1=A(1);\n"))
    with pytest.raises(UnsupportedFormat, match="STRUCTURAL_FRAME_SCHEMA"):
        step.extract(path, {})


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
def test_truncated_file(tmp_path: Path, fraction: float) -> None:
    whole = write_step(tmp_path, "AP214", gearbox()).read_bytes()
    path = tmp_path / "cut.stp"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    with pytest.raises(CorruptFile, match=r"truncated|ends inside a record"):
        step.extract(path, {})


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.stp"
    path.write_bytes(b"")
    with pytest.raises(CorruptFile, match="empty file"):
        step.extract(path, {})


def test_registry_points_here() -> None:
    assert extractors.get("step") is step.extract


# --- the sample corpus -----------------------------------------------------------------------


def test_corpus_generated_assembly() -> None:
    result = step.extract(corpus_file("step/generated_assembly_ap214.step"), {})
    assert result["schema"] == "AP214"
    assert [tree_of(root) for root in result["assembly"]] == [
        ("PLATE_ASSEMBLY", 1, (("BOLT_M8x25", 2, ()), ("PLATE_120x80x10", 1, ())))
    ]
    assert sorted(product["id"] for product in result["products"]) == [
        "BOLT_M8x25", "PLATE_120x80x10", "PLATE_ASSEMBLY",
    ]
    assert result["units"]["length"] == "millimetre"
    assert result["entity_counts"]["NEXT_ASSEMBLY_USAGE_OCCURRENCE"] == 3
    assert result["geometry_summary"]["counts"]["solid"] == 2  # one plate body, one bolt body


def test_corpus_generated_assembly_geometry() -> None:
    pytest.importorskip("OCP", reason="the optional geometry extra is not installed")
    result = step.extract(corpus_file("step/generated_assembly_ap214.step"), {"geometry": True})
    plate = 120 * 80 * 10
    bolt = math.pi * 4.0**2 * 25.0
    assert result["geometry"]["volume"] == pytest.approx(plate + 2 * bolt, rel=1e-4)
    assert result["geometry"]["bounding_box"]["max"] == pytest.approx([120, 80, 35], abs=1e-3)


@pytest.mark.parametrize(
    ("relative", "protocol", "product"),
    [
        ("step/nist_ctc_01_asme1_ap242-e1.stp", "AP242", "NIST Test Case 1"),
        ("step/nist_ftc_11_asme1_rb.stp", "AP203", "nist_ftc_11_asme1"),
    ],
)
def test_corpus_nist_files(relative: str, protocol: str, product: str) -> None:
    result = step.extract(corpus_file(relative), {})
    assert result["schema"] == protocol
    assert [item["id"] for item in result["products"]] == [product]
    assert result["units"]["length"] == "millimetre"
    assert result["geometry_summary"]["counts"]["solid"] == 1
    assert result["errors"] == []


BAD_FILES = {
    "bad/zero_byte.step": (CorruptFile, "empty file"),
    "bad/truncated_half.step": (CorruptFile, "the file ends inside a record"),
    "bad/ifc_named_as.step": (UnsupportedFormat, "this is an IFC file"),
    "bad/unknown_schema.step": (UnsupportedFormat, "NOT_A_REAL_SCHEMA"),
}


@pytest.mark.parametrize("relative", corpus_files("bad/*.step") or sorted(BAD_FILES))
def test_corpus_bad_files_fail_clearly_and_fast(relative: str) -> None:
    path = corpus_file(relative)
    error, fragment = BAD_FILES.get(relative, (PermanentError, ""))
    started = time.monotonic()
    with pytest.raises(error, match=re.escape(fragment)):
        step.extract(path, {})
    assert time.monotonic() - started < 5


# --- AP242 semantic PMI ----------------------------------------------------------------------

# A bracket as AP242 writers state its PMI (units of INCH_UNITS: #11 inch, #6 degree): a hole
# diameter 0.5 ±0.005, a location with limits, an angle with a fit-free +0.5/-0.25, a
# flatness tolerance, a position tolerance written as a complex instance with a modifier, and
# one size whose representation is missing (it must come out as null).
PMI_DATA = """#200=SHAPE_ASPECT('hole','',#1,.T.);
#201=SHAPE_ASPECT('face','',#1,.T.);
#202=(LENGTH_MEASURE_WITH_UNIT()MEASURE_REPRESENTATION_ITEM()
  MEASURE_WITH_UNIT(POSITIVE_LENGTH_MEASURE(0.5),#11)REPRESENTATION_ITEM('nominal value'));
#203=SHAPE_DIMENSION_REPRESENTATION('',(#202),#15);
#204=DIMENSIONAL_SIZE(#200,'diameter');
#205=DIMENSIONAL_CHARACTERISTIC_REPRESENTATION(#204,#203);
#206=LENGTH_MEASURE_WITH_UNIT(LENGTH_MEASURE(-0.005),#11);
#207=LENGTH_MEASURE_WITH_UNIT(LENGTH_MEASURE(0.005),#11);
#208=TOLERANCE_VALUE(#206,#207);
#209=PLUS_MINUS_TOLERANCE(#208,#204);
#210=MEASURE_REPRESENTATION_ITEM('lower limit',LENGTH_MEASURE(2.25),#11);
#211=MEASURE_REPRESENTATION_ITEM('upper limit',LENGTH_MEASURE(2.375),#11);
#212=SHAPE_DIMENSION_REPRESENTATION('',(#210,#211),#15);
#213=DIMENSIONAL_LOCATION('linear distance','',#200,#201);
#214=DIMENSIONAL_CHARACTERISTIC_REPRESENTATION(#213,#212);
#215=(MEASURE_REPRESENTATION_ITEM()MEASURE_WITH_UNIT(PLANE_ANGLE_MEASURE(30.),#6)
  PLANE_ANGLE_MEASURE_WITH_UNIT()REPRESENTATION_ITEM('nominal value'));
#216=SHAPE_DIMENSION_REPRESENTATION('',(#215),#15);
#217=ANGULAR_SIZE(#201,'angle',.EQUAL.);
#218=DIMENSIONAL_CHARACTERISTIC_REPRESENTATION(#217,#216);
#219=PLANE_ANGLE_MEASURE_WITH_UNIT(PLANE_ANGLE_MEASURE(-0.25),#6);
#220=PLANE_ANGLE_MEASURE_WITH_UNIT(PLANE_ANGLE_MEASURE(0.5),#6);
#221=TOLERANCE_VALUE(#219,#220);
#222=PLUS_MINUS_TOLERANCE(#221,#217);
#223=LENGTH_MEASURE_WITH_UNIT(LENGTH_MEASURE(0.002),#11);
#224=FLATNESS_TOLERANCE('Flatness.1','',#223,#201);
#225=LENGTH_MEASURE_WITH_UNIT(LENGTH_MEASURE(0.01),#11);
#226=(GEOMETRIC_TOLERANCE('Position.1','',#225,#200)
  GEOMETRIC_TOLERANCE_WITH_DATUM_REFERENCE((#230))
  GEOMETRIC_TOLERANCE_WITH_MODIFIERS((.MAXIMUM_MATERIAL_REQUIREMENT.))POSITION_TOLERANCE());
#227=DIMENSIONAL_SIZE(#200,'length');
#228=DIMENSIONAL_CHARACTERISTIC_REPRESENTATION(#227,#299);
"""


@pytest.fixture(scope="module")
def pmi(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    path = tmp_path_factory.mktemp("pmi") / "bracket.stp"
    path.write_text(step_file_text(SCHEMAS["AP242"], INCH_UNITS + PMI_DATA), newline="")
    result = step.extract(path, {})
    assert result["warnings"] == [
        "1 PMI value(s) could not be read with certainty and are given as null: "
        "#227 dimensional_size: no value is attached"
    ]
    return {entry["id"]: entry for entry in result["dimensions"]}


def test_pmi_count_and_order(pmi: dict[int, dict[str, Any]]) -> None:
    assert list(pmi) == [204, 213, 217, 224, 226, 227]


def test_pmi_size_with_plus_minus_tolerance(pmi: dict[int, dict[str, Any]]) -> None:
    entry = pmi[204]
    assert (entry["kind"], entry["dimension_type"], entry["label"]) == (
        "dimensional_size", "diameter", "diameter")
    assert (entry["value"], entry["unit"], entry["tolerance"]) == (0.5, "inch", "±0.005")
    assert (entry["lower_deviation"], entry["upper_deviation"]) == (-0.005, 0.005)


def test_pmi_location_with_limits(pmi: dict[int, dict[str, Any]]) -> None:
    entry = pmi[213]
    assert (entry["kind"], entry["dimension_type"], entry["value"]) == (
        "dimensional_location", "linear", None)
    assert (entry["lower_limit"], entry["upper_limit"], entry["unit"]) == (2.25, 2.375, "inch")
    assert entry["tolerance"] == "2.25..2.375"


def test_pmi_angle_with_unequal_tolerance(pmi: dict[int, dict[str, Any]]) -> None:
    entry = pmi[217]
    assert (entry["dimension_type"], entry["value"], entry["unit"]) == ("angular", 30.0, "degree")
    assert entry["tolerance"] == "+0.5/-0.25"


def test_pmi_geometric_tolerances(pmi: dict[int, dict[str, Any]]) -> None:
    flatness, position = pmi[224], pmi[226]
    assert (flatness["characteristic"], flatness["value"], flatness["unit"]) == (
        "flatness", 0.002, "inch")
    assert (position["characteristic"], position["value"], position["label"]) == (
        "position", 0.01, "Position.1")
    assert position["modifiers"] == ["maximum_material_requirement"]


def test_pmi_value_that_is_not_certain_is_null(pmi: dict[int, dict[str, Any]]) -> None:
    assert (pmi[227]["value"], pmi[227]["unit"]) == (None, None)


def test_no_pmi_no_dimensions(tmp_path: Path) -> None:
    result = step.extract(write_step(tmp_path, "AP242", gearbox()), {})
    assert result["dimensions"] == []
