"""The published options schemas and result keys are what the extractors really take and give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgqueue import extractors, samples
from pgqueue.extractors.schemas import RESULT_KEYS, all_schemas, options_problem
from tests.workers import ROOT


def test_the_schema_file_is_current() -> None:
    published = json.loads((ROOT / "docs" / "extraction-schemas.json").read_text())
    assert published == json.loads(json.dumps(all_schemas())), (
        "regenerate docs/extraction-schemas.json from pgqueue.extractors.schemas.all_schemas()"
    )


def test_every_format_documents_its_options_in_the_docs() -> None:
    text = (ROOT / "docs" / "extractors.md").read_text()
    for fmt, schema in all_schemas().items():
        assert f"## {fmt}" in text, fmt
        for option in schema["options"]["properties"]:
            assert f"`{option}`" in text, (fmt, option)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[samples.Sample]:
    return samples.write_all(tmp_path_factory.mktemp("samples"))


def test_results_carry_the_documented_keys(generated: list[samples.Sample]) -> None:
    for sample in generated:
        result = extractors.get(sample.format)(Path(sample.path), sample.options)
        missing = set(RESULT_KEYS[sample.format]) - set(result)
        assert not missing, (sample.format, missing)


@pytest.mark.parametrize(
    ("fmt", "options", "expected"),
    [
        ("pdf", {"pages": [0]}, "option 'pages.0'"),
        ("pdf", {"tables": 1}, "option 'tables'"),
        ("step", {"assembly": True, "colour": 1}, "unknown option 'colour'"),
        ("werk24", {"confidence_threshold": 2}, "option 'confidence_threshold'"),
        ("ifc", {"spatial": False}, None),
        ("noop-plugin", {"anything": 1}, None),
    ],
)
def test_options_are_checked_like_the_extractor_checks_them(
    fmt: str, options: dict[str, object], expected: str | None
) -> None:
    problem = options_problem(fmt, options)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem
