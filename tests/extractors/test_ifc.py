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


def test_a_schema_variant_without_a_model_is_refused_not_empty(tmp_path: Path) -> None:
    path = tmp_path / "old.ifc"
    path.write_text(step_file_text("IFC2X2_FINAL", "#1=IFCWALL('x');\n"))
    with pytest.raises(CorruptFile, match=r"0 IfcProject.*IFC2X2_FINAL read as IFC2X3"):
        ifc.extract(path, {})


# --- schema variants and 8-bit text ----------------------------------------------------------


def write_model(path: Path, schema: str, walls_per_storey: int = 2) -> IfcModelFacts:
    """``write_ifc_model``, with the owner history IFC2X3 requires of every rooted entity."""
    import ifcopenshell.api.owner.settings as owner

    def user(model: Any) -> Any:
        for found in model.by_type("IfcPersonAndOrganization"):
            return found
        return model.createIfcPersonAndOrganization(
            model.createIfcPerson(FamilyName="Hopper"),
            model.createIfcOrganization(Name="Test Office"),
        )

    def application(model: Any) -> Any:
        for found in model.by_type("IfcApplication"):
            return found
        return model.createIfcApplication(
            user(model).TheOrganization, "1.0", "pgqueue tests", "pgqueue-tests")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, "get_user", user)
        patch.setattr(owner, "get_application", application)
        return write_ifc_model(path, schema=schema, walls_per_storey=walls_per_storey)


def with_file_schema(source: Path, target: Path, schema: str, extra: bytes = b"") -> Path:
    data = re.sub(rb"FILE_SCHEMA\(\('[^']*'\)\)", f"FILE_SCHEMA(('{schema}'))".encode(),
                  source.read_bytes(), count=1)
    target.write_bytes(data.replace(b"ENDSEC;\nEND-ISO", extra + b"ENDSEC;\nEND-ISO"))
    return target


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("element_counts", "spatial_structure", "property_sets", "quantities", "units",
            "layers", "entities", "geometry_summary")
    return {key: result[key] for key in keys}


@pytest.mark.parametrize(
    ("written", "variant", "used"),
    [
        ("IFC2X3", "IFC2X_FINAL", "IFC2X3"),
        ("IFC2X3", "IFC2X3_TC1", "IFC2X3"),
        ("IFC4", "IFC4RC4", "IFC4"),
        ("IFC4", "IFC4X1", "IFC4"),
        ("IFC4X3", "IFC4X3_RC4", "IFC4X3_ADD2"),
    ],
)
def test_a_schema_variant_is_read_with_the_nearest_schema(
    tmp_path: Path, written: str, variant: str, used: str
) -> None:
    facts = write_model(tmp_path / "named.ifc", written)
    path = with_file_schema(facts.path, tmp_path / "variant.ifc", variant)
    result = ifc.extract(path, {})
    assert comparable(result) == comparable(ifc.extract(facts.path, {}))
    records = len(re.findall(rb"(?m)^#[0-9]+=", path.read_bytes()))
    metadata = result["metadata"]
    assert (metadata["file_schema"], metadata["schema_used"]) == (variant, used)
    assert metadata["records_not_parsed"] == 0
    assert result["warnings"] == [
        f"FILE_SCHEMA {variant} is not a schema ifcopenshell reads; read with {used}, the "
        f"nearest it knows: 0 of {records} record(s) did not parse"
    ]


def test_records_the_nearest_schema_cannot_take_are_counted(tmp_path: Path) -> None:
    facts = write_model(tmp_path / "named.ifc", "IFC2X3")
    # IfcIndexedPolyCurve and IfcAlignment came after IFC2X3: these records cannot be read.
    extra = (b"#90001=IFCCARTESIANPOINTLIST2D(((0.,0.),(1.,0.)));\n"
             b"#90002=IFCINDEXEDPOLYCURVE(#90001,$,.F.);\n")
    path = with_file_schema(facts.path, tmp_path / "variant.ifc", "IFC2X_FINAL", extra)
    result = ifc.extract(path, {})
    assert result["metadata"]["records_not_parsed"] == 2
    assert "2 of" in result["warnings"][0]
    assert result["errors"]
    assert comparable(result) == comparable(ifc.extract(facts.path, {}))


def shift_jis_escaped(text: str) -> bytes:
    """``text`` as Japanese ArchiCAD writes it: Shift-JIS bytes through \\X\\ and \\S\\."""
    parts = []
    for byte in text.encode("cp932"):
        if byte < 0x80:
            parts.append(chr(byte))
        elif byte < 0xA0:
            parts.append(f"\\X\\{byte:02X}")
        else:
            parts.append("\\S\\" + chr(byte - 0x80))  # a bare ' for 0xA7, as ArchiCAD does
    return "".join(parts).encode("ascii")


@pytest.fixture(scope="module")
def japanese(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    facts = write_model(tmp_path_factory.mktemp("sjis") / "model.ifc", "IFC2X3")
    data = facts.path.read_bytes()
    replacements = {
        b"'Ground floor'": b"'" + shift_jis_escaped("1階") + b"'",
        b"'First floor'": "'2階'".encode("cp932"),  # raw bytes, which ifcopenshell drops
        b"'Wall 0.0'": b"'" + shift_jis_escaped("制御室の壁") + b"'",  # 制 ends in 0xA7
        b"'REI90'": b"'" + shift_jis_escaped("耐火90") + b"'",
    }
    for old, new in replacements.items():
        assert old in data
        data = data.replace(old, new)
    path = facts.path.with_name("japanese.ifc")
    path.write_bytes(data)
    return path, ifc.extract(path, {})


def test_shift_jis_names_are_decoded(japanese: tuple[Path, dict[str, Any]]) -> None:
    _, result = japanese
    assert [storey["name"] for storey in storeys_of(result["spatial_structure"])] == [
        "1階", "2階",
    ]
    names = {entity["name"] for entity in result["entities"]}
    assert "制御室の壁" in names
    assert {entity["container"] for entity in result["entities"]} == {"1階", "2階"}
    ratings = result["property_sets"]["IfcWall"]["Pset_WallCommon"]["properties"]["FireRating"]
    assert ratings["values"] == {"耐火90": 2, "REI30": 2}
    assert result["metadata"]["text_encoding"] == "cp932"
    assert result["warnings"] == [
        "5 string(s) hold Shift-JIS (cp932) bytes instead of the standard's \\X2\\ escapes; "
        "decoded as such"
    ]


def test_shift_jis_fixture_is_mojibake_to_ifcopenshell(
    japanese: tuple[Path, dict[str, Any]],
) -> None:
    # What the decoding repairs: ifcopenshell alone reads bytes, and drops raw ones.
    import ifcopenshell

    path, _ = japanese
    names = sorted(storey.Name for storey in ifcopenshell.open(str(path)).by_type(
        "IfcBuildingStorey"))
    assert names == ["1\x8aK", "2K"]


@pytest.mark.parametrize(
    ("written", "name", "encoding"),
    [
        (b"'Ground floor'", "'1階'".encode(), "utf-8"),
        (b"'Ground floor'", b"'Geb\\X\\E4ude'", None),  # ISO 8859-1, as the standard says
        (b"'Ground floor'", "'Gebäude'".encode("latin-1"), "latin-1"),  # raw, not UTF-8
        (b"'Ground floor'", b"'\\X\\84Wand\\X\\93'", None),  # cp1252 quotes: no guess
    ],
)
def test_other_8bit_text(
    model: IfcModelFacts, tmp_path: Path, written: bytes, name: bytes, encoding: str | None
) -> None:
    path = tmp_path / "model.ifc"
    path.write_bytes(model.path.read_bytes().replace(written, name))
    result = ifc.extract(path, {})
    storey = storeys_of(result["spatial_structure"])[0]["name"]
    expected = {"utf-8": "1階", "latin-1": "Gebäude", None: None}[encoding]
    assert result["metadata"]["text_encoding"] == encoding
    if expected is not None:
        assert storey == expected
        assert "decoded as such" in result["warnings"][0]
    elif "Geb" in storey:
        assert (storey, result["warnings"]) == ("Gebäude", [])
    else:
        assert storey == "\x84Wand\x93"
        assert result["warnings"] == [
            "1 string(s) hold bytes 0x80-0x9F that are neither ISO 8859-1 text, UTF-8 nor "
            "Shift-JIS; kept as ifcopenshell reads them"
        ]


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


def test_a_space_placed_as_a_contained_element_is_in_the_tree(
    model: IfcModelFacts, tmp_path: Path
) -> None:
    # IFC Engine DLL puts IfcSpace into its storey with IfcRelContainedInSpatialStructure
    # instead of aggregating it; it is still a space of that storey.
    import ifcopenshell
    import ifcopenshell.guid

    written = ifcopenshell.open(str(model.path))
    storey = written.by_type("IfcBuildingStorey")[0]
    space = written.createIfcSpace(ifcopenshell.guid.new(), None, "Room I")
    written.createIfcRelContainedInSpatialStructure(
        ifcopenshell.guid.new(), None, None, None, [space], storey)
    path = tmp_path / "contained_space.ifc"
    written.write(str(path))
    result = ifc.extract(path, {})
    (found,) = [node for node in storeys_of(result["spatial_structure"])
                if node["global_id"] == storey.GlobalId]
    assert [(child["type"], child["name"]) for child in found["children"]] == [
        ("IfcSpace", "Room I")]
    assert found["element_count"] == model.walls_per_storey + 1
