"""Every PDF of the shared real files, compared at test time with PDFium and pdfminer.

The checks are those of ``bench.quality.pdf`` (page text within 1 % of the reference's
characters, no duplicated runs, each callout the reference shows found with its value or with
value null and a warning, no value the text does not show, long files read up to the limit),
so that the bench and the tests agree on what "right" means. Skipped without ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality.pdf import check_file
from tests.conftest import corpus_dir

REAL = corpus_dir() / "real" if corpus_dir() else None
FILES = sorted(REAL.glob("*.pdf")) if REAL and REAL.is_dir() else []


@pytest.mark.skipif(not FILES, reason="no real PDF files (../shared/corpus/real)")
@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_real_pdf_agrees_with_the_reference_libraries(path: Path) -> None:
    report = check_file(path)

    assert report.checks
    assert report.failures == []
