"""Formats read from content (no database): names are missing or lie."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgqueue import durations, samples, sniff
from pgqueue.file_jobs import RefusedFile, choose_format, outside_roots
from tests.conftest import corpus_dir

IFC_HEAD = b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('ViewDefinition'),'2;1');\nFILE_NAME('a','',(''),(''),'','','');\nFILE_SCHEMA(('IFC4'));\nENDSEC;\n"
STEP_HEAD = IFC_HEAD.replace(b"'IFC4'", b"'AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }'")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", "pdf"),
        (b"\x00\x00junk before the header %PDF-1.4\n", "pdf"),
        (b"AC1032\x00\x00\x00\x00\x00\x00", "dwg"),
        (b"AC1015\x00\x00\x00\x00\x00\x00", "dwg"),
        (b"  0\nSECTION\n  2\nHEADER\n  9\n$ACADVER\n  1\nAC1032\n", "dxf"),
        (b"999\nwritten by hand\n  0\r\nSECTION\r\n  2\r\nENTITIES\r\n  0\r\nLINE\r\n", "dxf"),
        (b"AutoCAD Binary DXF\r\n\x1a\x00\x00\x00", "dxf"),
        (IFC_HEAD, "ifc"),
        (IFC_HEAD.replace(b"'IFC4'", b"'IFC2X3'"), "ifc"),
        (STEP_HEAD, "step"),
        (STEP_HEAD.replace(b"AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }", b"AP242_MANAGED_MODEL_BASED_3D_ENGINEERING_MIM_LF"), "step"),
        (b"\xef\xbb\xbf" + IFC_HEAD, "ifc"),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"", None),
        (b"  0\nLINE\n  8\n0\n", None),  # group codes, but not a DXF file's start
        (b"hello world\n", None),
    ],
)
def test_sniff_reads_the_format_from_the_first_bytes(head: bytes, expected: str | None) -> None:
    assert sniff.sniff(head) == expected


def test_generated_samples_are_recognised(tmp_path: Path) -> None:
    for sample in samples.write_all(tmp_path):
        assert sniff.sniff_file(sample.path) == sample.format, sample.path.name


def test_content_wins_over_a_lying_name_and_a_note_says_so() -> None:
    assert choose_format("plan.step", "ifc", None) == (
        "ifc", "plan.step is named like step but its content is ifc: enqueued as ifc")
    assert choose_format("scan", "pdf", None) == ("pdf", None)
    assert choose_format("drawing.pdf", "pdf", None) == ("pdf", None)
    assert choose_format("anything.bin", None, "werk24") == ("werk24", None)


def test_dwg_and_unknown_content_are_refused_with_what_to_do() -> None:
    with pytest.raises(RefusedFile, match=r"plate\.dxf is a DWG drawing: pgqueue reads DXF, not DWG; save it as DXF"):
        choose_format("plate.dxf", "dwg", None)
    with pytest.raises(RefusedFile, match=r"cannot tell the format of photo\.pdf .* force it with --format"):
        choose_format("photo.pdf", None, None)


@pytest.mark.skipif(corpus_dir() is None, reason="the shared corpus is not on this machine")
def test_the_corpus_files_named_wrongly_are_seen_for_what_they_are() -> None:
    bad = corpus_dir() / "bad"  # type: ignore[operator]
    assert sniff.sniff_file(bad / "dwg_named_as.dxf") == "dwg"
    assert sniff.sniff_file(bad / "pdf_named_as.dxf") == "pdf"
    assert sniff.sniff_file(bad / "ifc_named_as.step") == "ifc"
    assert sniff.sniff_file(bad / "step_named_as.ifc") == "step"
    assert sniff.sniff_file(bad / "png_named_as.pdf") is None
    assert sniff.sniff_file(bad / "random_bytes.dxf") is None


def test_names_map_to_formats() -> None:
    assert sniff.from_name("s3://bucket/a/b.STP?versionId=3") == "step"
    assert sniff.from_name("model.ifc") == "ifc"
    assert sniff.from_name("old.dwg") == "dwg"
    assert sniff.from_name("README") is None


def test_files_outside_every_worker_s_roots_are_named(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "one.pdf", tmp_path / "b" / "two.pdf"
    assert outside_roots([one, two], []) == [one, two]
    assert outside_roots([one, two], [[tmp_path]]) == []
    assert outside_roots([one, two], [[tmp_path / "a"]]) == [two]
    assert outside_roots([one, two], [[tmp_path / "a"], [tmp_path / "b"]]) == []
    assert outside_roots([], [[tmp_path]]) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1h30m", 5400), ("1.5h", 5400), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert durations.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "5 minutes", "-5m", "m", "5x"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(durations.InvalidDuration, match=r"e\.g\. 30s, 5m, 2h, 7d"):
        durations.parse_duration(text)


def test_durations_are_described_shortly() -> None:
    assert durations.describe(None) == "-"
    assert durations.describe(0.25) == "250ms"
    assert durations.describe(4.25) == "4.2s"
    assert durations.describe(252) == "4m 12s"
    assert durations.describe(3 * 86400 + 7200 + 5) == "3d 2h"
