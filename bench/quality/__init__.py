"""Extraction quality on the real files of ``../shared/corpus/real``.

    python -m bench.quality [--real ../shared/corpus/real] [--json out.json]

Each format module here (``dxf``, ``pdf``, ``models``) exposes ``run(real_dir)``, which extracts
every real file of its formats with pgqueue, reads the same file with the format's own library
(ezdxf, PDFium/pdfminer, ifcopenshell, the STEP text), compares the two, and returns one
:class:`Score` per format. The checks live beside the real-file tests so that the bench and the
tests agree on what "right" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Score:
    """What one format's checks found on the real files."""

    format: str
    files: int = 0
    checks_made: int = 0
    checks_passed: int = 0
    seconds: list[float] = field(default_factory=list)  # extraction time of each file
    failures: list[str] = field(default_factory=list)  # one line per failed check

    def check(self, passed: bool, what: str) -> None:
        self.checks_made += 1
        if passed:
            self.checks_passed += 1
        else:
            self.failures.append(what)
