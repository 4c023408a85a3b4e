"""The IFC extractor on models built with ifcopenshell.api and on the sample corpus."""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cad_fixtures import (
    IfcModelFacts,
    corpus_file,
    corpus_files,
    step_file_text,
    write_ifc_model,
)

from pgqueue import extractors
from pgqueue.errors import CorruptFile, InvalidOptions, PermanentError, UnsupportedFormat
from pgqueue.extractors import ifc
from pgqueue.jobrun import to_json


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> IfcModelFacts:
    return write_ifc_model(tmp_path_factory.mktemp("ifc") / "hall.ifc", walls_per_storey=3)


@pytest.fixture(scope="module")
def extracted(model: IfcModelFacts) -> dict[str, Any]:
    return ifc.extract(model.path, {})


def storeys_of(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node["type"] == "IfcBuildingStorey" else []
    for child in node["children"]:
        found.extend(storeys_of(child))
    return found


def test_schema_units_and_counts(model: IfcModelFacts, extracted: dict[str, Any]) -> None:
    assert extracted["schema"] == "IFC4"
    assert extracted["units"] == {
        "area": "square metre", "length": "millimetre", "plane_angle": "degree",
    }
    walls = model.walls_per_storey * len(model.storeys)
    assert extracted["element_counts"] == {"IfcSlab": len(model.storeys), "IfcWall": walls}
    assert extracted["errors"] == []
    assert extracted["warnings"] == []
    json.loads(to_json(extracted))


def test_spatial_structure(model: IfcModelFacts, extracted: dict[str, Any]) -> None:
    project = extracted["spatial_structure"]
    assert (project["type"], project["name"]) == ("IfcProject", "Test Project")
    (site,) = project["children"]
    (building,) = site["children"]
    assert (site["name"], building["name"]) == ("Test Site", "Hall B")
    storeys = storeys_of(project)
    assert [(storey["name"], storey["elevation"]) for storey in storeys] == list(model.storeys)
    for storey in storeys:
        assert storey["element_counts"] == {"IfcSlab": 1, "IfcWall": model.walls_per_storey}
        assert storey["element_count"] == model.walls_per_storey + 1


def test_property_sets_are_aggregated(model: IfcModelFacts, extracted: dict[str, Any]) -> None:
    walls = len(model.fire_ratings)
    pset = extracted["property_sets"]["IfcWall"]["Pset_WallCommon"]
    assert pset["element_count"] == walls
    assert pset["properties"]["FireRating"] == {
        "count": walls, "values": dict(Counter(model.fire_ratings)), "values_left_out": 0,
    }
    external = sum(rating == "REI90" for rating in model.fire_ratings)  # the first of each storey
    assert pset["properties"]["IsExternal"]["values"] == {
        "true": external, "false": walls - external,
    }
    assert "IfcSlab" not in extracted["property_sets"]


def test_quantities_are_summed(model: IfcModelFacts, extracted: dict[str, Any]) -> None:
    walls = len(model.fire_ratings)
    quantities = extracted["quantities"]["IfcWall"]["Qto_WallBaseQuantities"]
    assert quantities["element_count"] == walls
    assert quantities["quantities"]["Length"] == {
        "count": walls, "sum": walls * model.wall_length, "min": model.wall_length,
        "max": model.wall_length,
    }
    assert quantities["quantities"]["NetVolume"]["sum"] == pytest.approx(walls * model.wall_volume)


def test_layers_entities_and_metadata(model: IfcModelFacts, extracted: dict[str, Any]) -> None:
    walls = len(model.fire_ratings)
    assert [(layer["name"], layer["entity_count"]) for layer in extracted["layers"]] == [
        (model.layer_name, walls)
    ]
    entities = extracted["entities"]
    assert len(entities) == walls + len(model.storeys)
    containers = Counter(entity["container"] for entity in entities)
    assert containers == {name: model.walls_per_storey + 1 for name, _ in model.storeys}
    assert extracted["geometry_summary"] == {"counts": {"SweptSolid": walls}, "total": walls}
    metadata = extracted["metadata"]
    assert metadata["file_name"] == model.path.name
    assert (metadata["author"], metadata["organization"]) == ("Grace Hopper", "Test Office")
    assert metadata["project_name"] == "Test Project"
    assert metadata["application"].startswith("IfcOpenShell")


@pytest.mark.parametrize("schema", ["IFC4X3"])
def test_other_schema(tmp_path: Path, schema: str) -> None:
    facts = write_ifc_model(tmp_path / "model.ifc", schema=schema, walls_per_storey=2)
    result = ifc.extract(facts.path, {})
    assert result["schema"] == schema
    assert result["element_counts"] == {"IfcSlab": 2, "IfcWall": 4}


def test_entities_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = write_ifc_model(tmp_path / "many.ifc", walls_per_storey=4)
    monkeypatch.setattr(ifc, "MAX_ENTITIES", 5)
    result = ifc.extract(facts.path, {"properties": False, "quantities": False})
    assert len(result["entities"]) == 5
    assert "entities lists the first 5 of 10 elements" in result["warnings"]


# --- options ---------------------------------------------------------------------------------


def test_options_turn_parts_off(model: IfcModelFacts) -> None:
    result = ifc.extract(
        model.path, {"properties": False, "quantities": False, "spatial": False}
    )
    assert result["spatial_structure"] is None
    assert result["property_sets"] is None
    assert result["quantities"] is None
    assert result["element_counts"]["IfcWall"] == len(model.fire_ratings)


def test_element_types_restrict_counts_and_sets(model: IfcModelFacts) -> None:
    result = ifc.extract(model.path, {"element_types": ["ifcslab", "IfcDoor"]})
    assert result["element_counts"] == {"IfcDoor": 0, "IfcSlab": len(model.storeys)}
    assert result["property_sets"] == {}
    assert result["quantities"] == {}
    for storey in storeys_of(result["spatial_structure"]):
        assert storey["element_counts"] == {"IfcSlab": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"element_types": ["IfcWal"]}, "'IfcWal' is not a class of IFC4"),
        ({"element_types": ["IfcPropertySet"]}, "'IfcPropertySet' is not a product class"),
        ({"element_types": ["IfcLabel"]}, "'IfcLabel' is not a product class"),
        ({"element_types": []}, "element_types"),
        ({"element_types": "IfcWall"}, "element_types"),
        ({"spatial": "no"}, "'spatial'"),
        ({"quantity": True}, "unknown option 'quantity'"),
    ],
)
def test_invalid_options(model: IfcModelFacts, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptions, match=re.escape(message)):
        ifc.extract(model.path, options)


# --- refused files ---------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.ifc"
    path.write_bytes(b"")
    with pytest.raises(CorruptFile, match="empty file"):
        ifc.extract(path, {})


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.95])
def test_truncated_file(model: IfcModelFacts, tmp_path: Path, fraction: float) -> None:
    whole = model.path.read_bytes()
    path = tmp_path / "cut.ifc"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    with pytest.raises(CorruptFile, match="truncated"):
        ifc.extract(path, {})


def test_step_part_named_ifc(tmp_path: Path) -> None:
    path = tmp_path / "part.ifc"
    path.write_text(step_file_text("AUTOMOTIVE_DESIGN", "#1=PRODUCT('p','p','',());\n"))
    with pytest.raises(UnsupportedFormat, match=r"this is a STEP file \(AP214.*not IFC"):
        ifc.extract(path, {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("#1=IFCWALL('2O2Fr$t4X7Zf8NOew3FLOH',$,'W',$,$,$,$,$,$);\n", "0 IfcProject"),
        ("#1=IFCPROJECT('2O2Fr$t4X7Zf8NOew3FLOH',$,'A',$,$,$,$,$,$);\n"
         "#2=IFCPROJECT('1O2Fr$t4X7Zf8NOew3FLOH',$,'B',$,$,$,$,$,$);\n", "2 IfcProject"),
        ("#1=IFCPROJECT('2O2Fr$t4X7Zf8NOew3FLOH',$,'P',$,$,$,$,(#2,#1),#99;\n"
         "#2=IFCWALL(,,,);\n#3=IFCNOTANENTITY('x');\n", "could not parse"),
    ],
)
def test_not_a_whole_model(tmp_path: Path, data: str, message: str) -> None:
    path = tmp_path / "model.ifc"
    path.write_text(step_file_text("IFC4", data))
    with pytest.raises(CorruptFile, match=message):
        ifc.extract(path, {})


def test_unsupported_ifc_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.ifc"
    path.write_text(step_file_text("IFC2X2_FINAL", "#1=IFCWALL('x');\n"))
    with pytest.raises(UnsupportedFormat, match="IFC2X2_FINAL is not supported"):
        ifc.extract(path, {})


def test_ifczip_and_ifcxml(model: IfcModelFacts, tmp_path: Path) -> None:
    archive = tmp_path / "model.ifc"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(model.path, "model.ifc")
    with pytest.raises(UnsupportedFormat, match="ZIP archive"):
        ifc.extract(archive, {})
    xml = tmp_path / "model_xml.ifc"
    xml.write_text('<?xml version="1.0"?>\n<ifcXML/>')
    with pytest.raises(UnsupportedFormat, match="ifcXML"):
        ifc.extract(xml, {})


def test_registry_points_here() -> None:
    assert extractors.get("ifc") is ifc.extract


# --- the sample corpus -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "schema"),
    [
        ("ifc/generated_ifc4_two_storeys.ifc", "IFC4"),
        ("ifc/generated_ifc2x3_two_storeys.ifc", "IFC2X3"),
    ],
)
def test_corpus_generated_models(relative: str, schema: str) -> None:
    result = ifc.extract(corpus_file(relative), {})
    assert result["schema"] == schema
    assert result["element_counts"] == {"IfcDoor": 2, "IfcSlab": 2, "IfcWall": 8, "IfcWindow": 2}
    assert result["units"]["length"] == "metre"
    storeys = storeys_of(result["spatial_structure"])
    assert [(storey["name"], storey["elevation"]) for storey in storeys] == [
        ("Level 0", 0.0), ("Level 1", 3.0),
    ]
    assert [storey["element_count"] for storey in storeys] == [7, 7]
    pset = result["property_sets"]["IfcWall"]["Pset_WallCommon"]["properties"]
    assert pset["LoadBearing"]["values"] == {"true": 4, "false": 4}
    volume = result["quantities"]["IfcWall"]["Qto_WallBaseQuantities"]["quantities"]["NetVolume"]
    assert volume["sum"] == pytest.approx(24.0)


def test_corpus_allplan_export() -> None:
    result = ifc.extract(corpus_file("ifc/allplan_test-01_ifc4.ifc"), {})
    assert result["schema"] == "IFC4"
    project = result["spatial_structure"]
    assert project["name"] == "PP-18-615-EKZ Taborland"
    (building,) = project["children"]
    assert building["name"] == "Verkaufshalle Neu"
    (storey,) = building["children"]
    assert (storey["name"], storey["elevation"]) == ("Fundamente", -1110.0)
    assert storey["element_count"] == sum(storey["element_counts"].values()) > 0
    assert result["units"]["length"] == "millimetre"
    assert "Allplan 2019.1" in result["metadata"]["applications"]
    assert result["layers"] and all(layer["entity_count"] > 0 for layer in result["layers"])
    assert result["errors"] == []


BAD_FILES = {
    "bad/zero_byte.ifc": (CorruptFile, "empty file"),
    "bad/truncated_half.ifc": (CorruptFile, "truncated"),
    "bad/garbage_data.ifc": (CorruptFile, "truncated"),
    "bad/step_named_as.ifc": (UnsupportedFormat, "this is a STEP file (AP203"),
}


@pytest.mark.parametrize("relative", corpus_files("bad/*.ifc") or sorted(BAD_FILES))
def test_corpus_bad_files_fail_clearly_and_fast(relative: str) -> None:
    path = corpus_file(relative)
    error, fragment = BAD_FILES.get(relative, (PermanentError, ""))
    started = time.monotonic()
    with pytest.raises(error, match=re.escape(fragment)):
        ifc.extract(path, {})
    assert time.monotonic() - started < 5
