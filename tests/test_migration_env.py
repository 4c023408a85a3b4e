"""``alembic`` run by hand: the schema name from the environment is checked before it is used."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from tests.workers import ROOT


def test_alembic_refuses_a_schema_name_that_is_not_a_plain_identifier(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url,
           "PGQUEUE_SCHEMA_NAME": 'evil"; CREATE TABLE pwned (id int); --'}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "heads"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "invalid schema name" in line]
    assert lines and "Traceback" not in result.stderr, result.stderr[-2000:]
    with psycopg.connect(db_url) as conn:
        found = conn.execute("SELECT to_regclass('pwned') IS NOT NULL, "
                             "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname LIKE 'evil%%')").fetchone()
    assert found == (False, False)
