"""The DXF extractor: drawings written here with ezdxf (known facts), bad files, the corpus."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dxf_fixtures
import ezdxf
import pytest

from bench.quality import Score
from bench.quality.dxf import check
from pgqueue.errors import CorruptFile, InvalidOptions, PermanentError, UnsupportedFormat
from pgqueue.extractors import dxf_placements, get
from pgqueue.extractors.dxf import extract
from pgqueue.extractors.dxf_entities import MAX_ENTITIES

if TYPE_CHECKING:
    from conftest import DxfDrawing, DxfMaker

REFUSAL_SECONDS = 5.0
# ezdxf's default dimension style shows lengths times 100 (metres in centimetres)
SCALED_BY_EZDXF_STYLE = (
    "4 dimension(s) show their measurement multiplied by DIMLFAC 100; "
    "values are the measured lengths in drawing units"
)
TITLE_FIELDS = ("drawing_number", "title", "revision", "date", "author", "company", "scale",
                "sheet", "material")


def dimension_facts(result: dict[str, Any]) -> set[tuple[float, str, str | None]]:
    return {(item["value"], item["dimension_type"], item["tolerance"]) for item in result["dimensions"]}


def attribute_values(path: Path) -> list[str]:
    """The text of every ATTRIB attached to an insert of the model space, as ezdxf reads it."""
    import ezdxf

    modelspace = ezdxf.readfile(path).modelspace()
    return [attribute.dxf.text for insert in modelspace.query("INSERT") for attribute in insert.attribs]


def title_fields(result: dict[str, Any]) -> dict[str, Any]:
    block = result["title_block"]
    return {name: block[name] for name in TITLE_FIELDS if block[name] is not None}


# --- a drawing written here ----------------------------------------------------------------


def test_registry_points_at_this_extractor() -> None:
    assert get("dxf") is extract


def test_layers_with_their_state_and_entity_counts(drawing_dxf: DxfDrawing) -> None:
    layers = {layer["name"]: layer for layer in extract(drawing_dxf.path, {})["layers"]}

    for name, expected in drawing_dxf.layers.items():
        assert {key: layers[name][key] for key in expected} == expected, name
    assert layers["HIDDEN"]["linetype"] == "Continuous"


def test_dimensions_are_measured_with_tolerances(drawing_dxf: DxfDrawing) -> None:
    result = extract(drawing_dxf.path, {})

    assert dimension_facts(result) == drawing_dxf.dimensions
    assert {item["unit"] for item in result["dimensions"] if item["dimension_type"] != "angular"} == {"mm"}
    assert [item["unit"] for item in result["dimensions"] if item["dimension_type"] == "angular"] == ["deg"]
    assert {item["label"] for item in result["dimensions"]} == {"<> ±0.1", None}


def test_title_block_from_attributes_and_text(drawing_dxf: DxfDrawing) -> None:
    result = extract(drawing_dxf.path, {})

    assert title_fields(result) == drawing_dxf.title_block
    assert result["title_block"]["custom_fields"] == drawing_dxf.custom_fields


def test_bom_rows_in_position_order(drawing_dxf: DxfDrawing) -> None:
    bom = extract(drawing_dxf.path, {})["bom"]

    assert bom["headers"] == ["POS", "PART_NO", "DESC", "QTY"]
    assert bom["items"] == drawing_dxf.bom_rows
    assert bom["total_items"] == len(drawing_dxf.bom_rows)


def test_named_blocks_with_insert_counts_and_attribute_tags(drawing_dxf: DxfDrawing) -> None:
    blocks = {block["name"]: block for block in extract(drawing_dxf.path, {})["blocks"]}

    assert {name: blocks[name]["insert_count"] for name in drawing_dxf.insert_counts} == drawing_dxf.insert_counts
    assert blocks["PARTS_ROW"]["attributes"] == ["POS", "PART_NO", "DESC", "QTY"]
    assert not any(name.startswith("*") for name in blocks)  # dimension and layout blocks


def test_text_geometry_and_metadata(drawing_dxf: DxfDrawing) -> None:
    result = extract(drawing_dxf.path, {})

    texts = [block["text"] for block in result["text_blocks"]]
    assert texts[: len(drawing_dxf.texts)] == drawing_dxf.texts
    assert texts[len(drawing_dxf.texts):] == attribute_values(drawing_dxf.path)
    assert result["text_blocks"][0]["font_size"] == 3.5
    assert result["geometry_summary"]["counts"] == {
        "ARC": 1, "CIRCLE": 2, "DIMENSION": 5, "INSERT": 7, "LINE": 2, "LWPOLYLINE": 1,
        "MTEXT": 1, "TEXT": 2,
    }
    circle = next(item for item in result["entities"] if item["type"] == "CIRCLE")
    assert circle["center"] == [30.0, 30.0, 0.0] and circle["radius"] == 6.0
    assert circle["layer"] == "OUTLINE" and circle["layout"] == "Model" and circle["handle"]
    metadata = result["metadata"]
    assert (metadata["dxf_version"], metadata["release"], metadata["units"]) == ("AC1032", "R2018", "mm")
    assert metadata["counts"]["entities"] == result["geometry_summary"]["total"] == 21
    low, high = metadata["extents"]
    assert low[0] <= 0 and low[1] <= 0 and high[0] >= 210 and high[1] >= 200
    assert result["errors"] == []
    assert result["warnings"] == [SCALED_BY_EZDXF_STYLE]


def test_r12_drawing(dxf_maker: DxfMaker) -> None:
    drawing = dxf_maker.drawing("R12")
    result = extract(drawing.path, {})

    assert dimension_facts(result) == drawing.dimensions
    assert title_fields(result) == drawing.title_block
    assert result["bom"]["items"] == drawing.bom_rows
    assert "POLYLINE" in result["geometry_summary"]["counts"]
    assert "MTEXT" not in result["geometry_summary"]["counts"]
    assert result["metadata"]["dxf_version"] == "AC1009"


def test_binary_dxf_reads_as_the_text_one(dxf_maker: DxfMaker, drawing_dxf: DxfDrawing) -> None:
    binary = extract(dxf_maker.drawing(binary=True).path, {})
    text = extract(drawing_dxf.path, {})

    for key in ("dimensions", "title_block", "bom", "layers", "geometry_summary"):
        assert binary[key] == text[key], key


def test_a_drawing_ezdxf_reads_only_in_recovery_mode(dxf_maker: DxfMaker, drawing_dxf: DxfDrawing) -> None:
    text = drawing_dxf.path.read_text(encoding="cp1252")
    entities_end = text.index("  0\nENDSEC\n", text.index("  2\nENTITIES\n"))
    damaged = text[:entities_end] + text[entities_end + len("  0\nENDSEC\n"):]

    result = extract(dxf_maker.file("no_endsec.dxf", damaged.encode("cp1252")), {})

    assert any("recovery mode" in warning for warning in result["warnings"])
    assert dimension_facts(result) == drawing_dxf.dimensions
    assert title_fields(result) == drawing_dxf.title_block


# --- options -------------------------------------------------------------------------------


def test_layer_filter_narrows_entities_not_the_drawing(drawing_dxf: DxfDrawing) -> None:
    result = extract(drawing_dxf.path, {"layer_filter": ["dimensions", "NO_SUCH_LAYER"]})

    assert {item["layer"] for item in result["entities"]} == {"DIMENSIONS"}
    assert result["geometry_summary"]["counts"] == {"DIMENSION": 5}
    assert dimension_facts(result) == drawing_dxf.dimensions
    assert result["text_blocks"] == []
    assert title_fields(result) == drawing_dxf.title_block
    assert len(result["layers"]) == len(extract(drawing_dxf.path, {})["layers"])
    assert result["warnings"] == [
        "layer_filter names layers the drawing does not have: NO_SUCH_LAYER", SCALED_BY_EZDXF_STYLE,
    ]


def test_options_turn_parts_off(drawing_dxf: DxfDrawing) -> None:
    result = extract(
        drawing_dxf.path,
        {"layers": False, "blocks": False, "dimensions": False, "text": False, "title_block": False},
    )

    assert (result["layers"], result["blocks"], result["dimensions"], result["text_blocks"]) == ([], [], [], [])
    assert result["title_block"] is None
    assert result["geometry_summary"]["total"] == 21


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"colour": True}, "unknown option 'colour'"),
        ({"layers": "no"}, "'layers'"),
        ({"title_block": 0}, "'title_block'"),
        ({"layer_filter": "DIMENSIONS"}, "'layer_filter'"),
        ({"layer_filter": []}, "'layer_filter'"),
        ({"layer_filter": ["OUTLINE", 3]}, "'layer_filter.1'"),
    ],
)
def test_bad_options_are_refused_by_name(drawing_dxf: DxfDrawing, options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidOptions, match=named):
        extract(drawing_dxf.path, options)


def test_entity_list_is_bounded_and_says_so(dxf_maker: DxfMaker) -> None:
    count = MAX_ENTITIES + 200
    result = extract(dxf_maker.points(count), {})

    assert len(result["entities"]) == MAX_ENTITIES
    assert result["geometry_summary"]["counts"] == {"POINT": count}
    assert result["warnings"] == [f"entities lists the first {MAX_ENTITIES:,} of {count:,} entities"]


# --- bad files -----------------------------------------------------------------------------


def _cut(maker: DxfMaker, *, binary: bool = False) -> Path:
    whole = maker.drawing(binary=binary).path.read_bytes()
    return maker.file("cut.dxf", whole[: len(whole) // 2])


def _without_eof(maker: DxfMaker) -> Path:
    text = maker.drawing().path.read_text(encoding="cp1252")
    return maker.file("no_eof.dxf", text[: text.rindex("  0\nEOF")].encode("cp1252"))


BAD: list[tuple[str, Any, type[PermanentError], str]] = [
    ("empty", lambda maker: maker.file("empty.dxf", b""), CorruptFile, "empty"),
    ("dwg", lambda maker: maker.file("drawing.dxf", b"AC1027" + bytes(4000)), UnsupportedFormat,
     "DWG is not supported; convert to DXF"),
    ("pdf", lambda maker: maker.file("drawing.dxf", b"%PDF-1.7\n" + bytes(100)), CorruptFile, "PDF document"),
    ("png", lambda maker: maker.file("drawing.dxf", b"\x89PNG\r\n\x1a\n" + bytes(100)), CorruptFile, "PNG image"),
    ("random", lambda maker: maker.file("noise.dxf", random.Random(7).randbytes(8192)), CorruptFile,
     "does not start with a DXF group code"),
    ("truncated", _cut, CorruptFile, "truncated"),
    ("binary truncated", lambda maker: _cut(maker, binary=True), CorruptFile, "binary DXF is truncated"),
    ("no EOF", _without_eof, CorruptFile, "does not end with the 0/EOF marker"),
    ("bad numbers", lambda maker: maker.file("numbers.dxf", (
        b"  0\nSECTION\n  2\nENTITIES\n  0\nLINE\n  8\n0\n 10\nnot-a-number\n 20\n1\n"
        b"  0\nENDSEC\n  0\nEOF\n")), CorruptFile, "cannot be read"),
]


@pytest.mark.parametrize(("builder", "error", "says"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_files_are_refused_quickly_and_clearly(
    dxf_maker: DxfMaker, builder: Any, error: type[PermanentError], says: str
) -> None:
    path = builder(dxf_maker)
    started = time.monotonic()

    with pytest.raises(error, match=says):
        extract(path, {})
    assert time.monotonic() - started < REFUSAL_SECONDS


def test_a_minimal_dxf_without_header_states_no_units(dxf_maker: DxfMaker) -> None:
    path = dxf_maker.file("minimal.dxf", (
        b"  0\nSECTION\n  2\nENTITIES\n  0\nLINE\n  8\nEDGES\n 10\n0\n 20\n0\n 30\n0\n"
        b" 11\n25\n 21\n0\n 31\n0\n  0\nENDSEC\n  0\nEOF\n"))

    result = extract(path, {})

    line = result["entities"][0]
    assert (line["type"], line["layer"], line["start"], line["end"]) == ("LINE", "EDGES", [0.0, 0.0, 0.0], [25.0, 0.0, 0.0])
    assert result["metadata"]["units"] is None and result["metadata"]["dxf_version"] is None
    assert result["warnings"] == ["the DXF has no HEADER section: its version and units are not stated"]


# --- the sample corpus ---------------------------------------------------------------------

CORPUS_TITLE_BLOCK = {
    "title": "MOUNTING PLATE", "drawing_number": "DWG-1001", "revision": "B", "scale": "1:1",
    "author": "CORPUS", "material": "S235JR",
}
CORPUS_BOM = [
    {"POS": "1", "PART_NO": "PLT-120-80", "DESC": "PLATE 120x80x10", "QTY": "1"},
    {"POS": "2", "PART_NO": "ISO4762-M8x25", "DESC": "SOCKET HEAD CAP SCREW", "QTY": "2"},
    {"POS": "3", "PART_NO": "ISO7089-8", "DESC": "WASHER", "QTY": "2"},
]
CORPUS_DIMENSIONS = {(120.0, "linear", None), (80.0, "linear", None), (16.0, "diameter", None), (15.0, "radius", None)}


@pytest.mark.parametrize(("name", "units"), [("plate_r2018_mm.dxf", "mm"), ("plate_r12_mm.dxf", None)])
def test_corpus_plate(corpus: Path, name: str, units: str | None) -> None:
    result = extract(corpus / "dxf" / name, {})

    assert dimension_facts(result) == CORPUS_DIMENSIONS
    assert title_fields(result) == CORPUS_TITLE_BLOCK
    assert result["bom"]["items"] == CORPUS_BOM
    assert {"OUTLINE", "HIDDEN", "DIMENSIONS", "TEXT", "TITLEBLOCK", "BOM"} <= {layer["name"] for layer in result["layers"]}
    assert result["metadata"]["units"] == units
    assert result["errors"] == []


def test_corpus_acad_table(corpus: Path) -> None:
    result = extract(corpus / "dxf" / "ezdxf_acad_table_with_blk_ref.dxf", {})

    (table,) = result["tables"]
    assert table["headers"][0] == "Title"
    assert [row[:2] for row in table["rows"]] == [[str(number), str(number + 9)] for number in range(1, 9)] + [["9", "line"]]
    assert table["rows"][2][2] == "merge merge merge merge merge merge merge merge"
    assert (table["num_rows"], table["num_columns"]) == (9, 5)
    assert result["metadata"]["units"] == "m"


CORPUS_REFUSALS: dict[str, tuple[type[PermanentError], str]] = {
    "dwg_named_as.dxf": (UnsupportedFormat, "DWG is not supported; convert to DXF"),
    "garbage_entities.dxf": (CorruptFile, "does not end with the 0/EOF marker"),
    "pdf_named_as.dxf": (CorruptFile, "not a DXF: the file is a PDF document"),
    "random_bytes.dxf": (CorruptFile, "does not start with a DXF group code"),
    "truncated_half.dxf": (CorruptFile, "truncated"),
    "zero_byte.dxf": (CorruptFile, "empty"),
}


def test_corpus_bad_dxfs_are_refused_quickly(bad_dxf: Path) -> None:
    error, says = CORPUS_REFUSALS.get(bad_dxf.name, (PermanentError, "DXF"))
    started = time.monotonic()

    with pytest.raises(error, match=says):
        extract(bad_dxf, {})
    elapsed = time.monotonic() - started
    assert elapsed < REFUSAL_SECONDS, f"{bad_dxf.name} took {elapsed:.1f} s"


# --- what real drawings hold: block references, dimensions to doubt, encoded text ---------


def reference_failures(path: Path, result: dict[str, Any]) -> list[str]:
    """What ``bench.quality.dxf`` finds wrong against ezdxf's own reading of the file."""
    score = Score("dxf")
    check(path, result, score)
    return score.failures


def texts_of(result: dict[str, Any]) -> list[str]:
    return [block["text"] for block in result["text_blocks"]]


def test_text_in_block_references_is_read_in_world_coordinates(tmp_path: Path) -> None:
    from ezdxf import bbox

    path = dxf_fixtures.block_references(tmp_path / "blocks.dxf")
    result = extract(path, {})

    assert reference_failures(path, result) == []
    texts = Counter(texts_of(result))
    assert {text: texts[text] for text in (*dxf_fixtures.BLOCK_TEXTS, dxf_fixtures.NESTED_TEXT)} == {
        text: 2 for text in (*dxf_fixtures.BLOCK_TEXTS, dxf_fixtures.NESTED_TEXT)
    }
    assert texts[dxf_fixtures.ANONYMOUS_TEXT] == 1
    expected = set()  # ezdxf's own explosion of the SYMBOL references, nested one included
    for insert in ezdxf.readfile(path).modelspace().query('INSERT[name=="SYMBOL"]'):
        for part in insert.virtual_entities():
            for text in [part] if part.dxftype() != "INSERT" else part.virtual_entities():
                if text.dxftype() in ("TEXT", "MTEXT"):
                    box = bbox.extents([text], fast=True)
                    expected.add(tuple(round(value, 3) for value in (*box.extmin.vec2, *box.extmax.vec2)))
    found = {
        tuple(round(value, 3) for value in block["bbox"])
        for block in result["text_blocks"]
        if block["text"] in (*dxf_fixtures.BLOCK_TEXTS, dxf_fixtures.NESTED_TEXT)
    }
    assert found == expected and len(found) == 6


def test_minsert_shows_its_attributes_once_per_grid_cell(tmp_path: Path) -> None:
    path = dxf_fixtures.block_references(tmp_path / "blocks.dxf")
    result = extract(path, {})

    cells = dxf_fixtures.MINSERT_ROWS * dxf_fixtures.MINSERT_COLUMNS
    texts = Counter(texts_of(result))
    assert {value: texts[value] for value in dxf_fixtures.FLAG_VALUES.values()} == {
        value: cells for value in dxf_fixtures.FLAG_VALUES.values()
    }
    assert dxf_fixtures.HIDDEN_VALUE not in texts  # an invisible attribute is not shown
    flags = [block["bbox"] for block in result["text_blocks"] if block["text"] == "Flag"]
    assert len({tuple(box) for box in flags}) == cells


def test_a_dimension_in_a_scaled_block_reference_shows_a_length_it_does_not_measure(tmp_path: Path) -> None:
    path = dxf_fixtures.block_references(tmp_path / "blocks.dxf")
    result = extract(path, {})

    shown = f"{dxf_fixtures.BLOCK_DIMENSION:g}"
    assert sorted(
        ((item["value"], item["label"]) for item in result["dimensions"]), key=str
    ) == sorted([(dxf_fixtures.BLOCK_DIMENSION, None), (None, shown)], key=str)
    assert result["warnings"] == [
        "dimension (in a block reference) has no certain value: the drawing shows "
        f"'{shown}' but the dimension measures {2 * dxf_fixtures.BLOCK_DIMENSION:g}"
    ]


def test_dimensions_keep_a_value_only_where_their_readings_agree(tmp_path: Path) -> None:
    path = dxf_fixtures.dimension_readings(tmp_path / "dimensions.dxf")
    result = extract(path, {})

    assert reference_failures(path, result) == []
    assert [(item["value"], item["dimension_type"], item["label"]) for item in result["dimensions"]] == [
        (30.0, "linear", None),
        (25.0, "linear", None),  # its DIMSTYLE1 is missing: the value is still measured
        (12.5, "unknown", None),  # a type ezdxf does not know: the stored measurement
        (7.25, "radius", None),  # LARGE_RADIAL_DIMENSION: the stored measurement
        (None, "angular", "90°"),  # the points measure 90°, the file stores 270°
        (round(dxf_fixtures.ARC_LENGTH, 6), "linear", None),  # ARC_DIMENSION: stored, as shown
        (None, "linear", "35"),  # a text override showing another number
    ]
    assert result["errors"] == []
    problems = [warning for warning in result["warnings"] if "has no certain value" in warning]
    assert len(problems) == 2
    assert "ezdxf measures 90 but the file stores 270 and the drawing shows '90°'" in problems[0]
    assert "the drawing shows '35' but the dimension measures 20" in problems[1]


def test_escaped_characters_are_decoded_in_layer_names_and_text(tmp_path: Path) -> None:
    path = dxf_fixtures.escaped_text(tmp_path / "escaped.dxf")
    result = extract(path, {})

    assert reference_failures(path, result) == []
    assert dxf_fixtures.GREEK_LAYER in {layer["name"] for layer in result["layers"]}
    assert texts_of(result) == [dxf_fixtures.GREEK_TEXT, dxf_fixtures.FORMATTED_PLAIN]
    greek = extract(path, {"layer_filter": [dxf_fixtures.GREEK_LAYER.lower()]})
    assert [(item["type"], item["layer"]) for item in greek["entities"]] == [("TEXT", dxf_fixtures.GREEK_LAYER)]
    assert greek["warnings"] == []


@pytest.mark.parametrize(("code_page", "codec"), [("DOS850", "cp850"), ("DOS437", "cp437")])
def test_legacy_code_pages_are_read_in_their_own_code_page(tmp_path: Path, code_page: str, codec: str) -> None:
    path = dxf_fixtures.legacy_code_page(tmp_path / "legacy.dxf", code_page, codec)
    result = extract(path, {})

    assert texts_of(result) == [dxf_fixtures.LEGACY_TEXT]
    assert result["metadata"]["encoding"] == codec
    assert reference_failures(path, result) == []


def test_every_mtext_column_is_read(tmp_path: Path) -> None:
    path = dxf_fixtures.mtext_columns(tmp_path / "columns.dxf")
    result = extract(path, {})

    assert texts_of(result) == ["COLUMN ONE\nCOLUMN TWO\nCOLUMN THREE"]
    assert reference_failures(path, result) == []


@pytest.mark.parametrize(("version", "release"), [("AC1012", "R13"), ("AC1014", "R14")])
def test_the_file_states_its_own_version(tmp_path: Path, version: str, release: str) -> None:
    path = dxf_fixtures.older_version(tmp_path / "old.dxf", version)
    metadata = extract(path, {})["metadata"]

    assert (metadata["dxf_version"], metadata["release"]) == (version, release)


def test_multileader_text_is_read(tmp_path: Path) -> None:
    path = dxf_fixtures.leader(tmp_path / "leader.dxf")
    result = extract(path, {})

    assert texts_of(result) == [dxf_fixtures.LEADER_TEXT]
    assert result["text_blocks"][0]["font_size"] == 2.5
    assert reference_failures(path, result) == []


def test_reading_block_references_stops_at_its_limit_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dxf_placements, "MAX_PLACED", 10)
    path = dxf_fixtures.big_grid(tmp_path / "grid.dxf", 5, 4)

    result = extract(path, {})

    assert texts_of(result) == ["CELL"] * 10
    assert result["warnings"] == ["only the first 10 texts and dimensions inside block references were read"]
