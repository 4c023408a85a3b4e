"""Every real DXF of ``../shared/corpus/real`` against what ezdxf reads from it, at test time.

The checks are ``bench.quality.dxf.check`` (the ones ``python -m bench.quality`` counts): the
file's own version, each decoded layer name, each visible text as often as the drawing shows
it (block references and MINSERT arrays included), each dimension whose readings agree present
with its value, and no dimension value that they do not agree on. Skipped without the folder;
the generated drawings of ``test_dxf.py`` cover each kind of trouble without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import Score
from bench.quality.dxf import check
from pgqueue.extractors.dxf import extract
from tests.conftest import corpus_dir


def _real_dxfs() -> list[Path]:
    corpus = corpus_dir()
    return sorted((corpus / "real").glob("*.dxf")) if corpus is not None else []


REAL_DXFS = _real_dxfs()


@pytest.mark.skipif(not REAL_DXFS, reason="no real DXF files (../shared/corpus/real) on this machine")
@pytest.mark.parametrize("path", REAL_DXFS, ids=[path.name for path in REAL_DXFS])
def test_real_drawing_reads_as_ezdxf_reads_it(path: Path) -> None:
    score = Score("dxf")

    check(path, extract(path, {}), score)

    assert score.failures == []
    assert score.checks_made > 0
