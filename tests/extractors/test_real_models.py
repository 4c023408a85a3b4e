"""Every real IFC and STEP file of ``../shared/corpus/real``, checked against ifcopenshell and
the STEP text at test time (the checks live in ``bench.quality.models``, which the quality
bench runs too). Skipped where the folder is absent; the generated fixtures of test_ifc.py and
test_step.py cover each case without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cad_fixtures import corpus_dir

from bench.quality.models import (
    IFC_SUFFIXES,
    STEP_SUFFIXES,
    ifc_checks,
    real_files,
    step_checks,
)
from pgqueue.extractors import ifc, step


def real_dir() -> Path | None:
    corpus = corpus_dir()
    return corpus / "real" if corpus is not None and (corpus / "real").is_dir() else None


def names(suffixes: tuple[str, ...]) -> list[str]:
    folder = real_dir()
    return [path.name for path in real_files(folder, suffixes)] if folder else []


def real_file(name: str) -> Path:
    folder = real_dir()
    if folder is None:
        pytest.skip("no ../shared/corpus/real folder")
    return folder / name


READERS = {"ifc": (ifc.extract, ifc_checks), "step": (step.extract, step_checks)}
CASES = [("ifc", name) for name in names(IFC_SUFFIXES)] + [
    ("step", name) for name in names(STEP_SUFFIXES)]


@pytest.mark.parametrize(("fmt", "name"), CASES or [("ifc", "(no real files)")])
def test_real_model_agrees_with_its_reference(fmt: str, name: str) -> None:
    # IFC: ifcopenshell itself; STEP: the file's text read with regular expressions.
    path = real_file(name)
    extract, checks_of = READERS[fmt]
    checks = checks_of(path, extract(path, {}))
    assert len(checks) >= 8
    assert [what for passed, what in checks if not passed] == []


def test_real_models_read_variants_encodings_and_pmi() -> None:
    # The cases issue 12 names are in the folder: a schema variant read with the nearest
    # schema, Shift-JIS names decoded, an AP242 part with semantic PMI.
    folder = real_dir()
    if folder is None:
        pytest.skip("no ../shared/corpus/real folder")
    variants = [ifc.extract(path, {})["metadata"] for path in real_files(folder, IFC_SUFFIXES)]
    assert any(found["file_schema"] != found["schema_used"] for found in variants)
    assert any(found["text_encoding"] == "cp932" for found in variants)
    pmi = [len(step.extract(path, {})["dimensions"]) for path in real_files(folder, STEP_SUFFIXES)]
    assert max(pmi) >= 7
