"""Dashboard page times on a big table.

    python -m bench.web [--rows 1000000] [--repeat 7]

Fills a fresh database with ``--rows`` finished jobs (90 % completed, 8 % failed, 2 % cancelled,
spread over 30 days and five formats, 200 pending), analyses it, then asks the app (in process,
through its ASGI interface, so only the app and PostgreSQL are timed) for each main page
``--repeat`` times and prints the median and the slowest time per page, with the plan of the
jobs page's statement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg
from starlette.testclient import TestClient

from bench.server import bench_server, vacuum_analyze
from pgqueue import sql
from pgqueue.migrate import upgrade
from pgqueue.web import create_app

FILL = """
INSERT INTO extraction_jobs (filename, file_url, file_size, format, status, created_at,
                             completed_at, error_message, record_id)
SELECT 'sheet-' || n || '.' || fmt, 's3://archive/' || n || '.' || fmt, 1000 + n, fmt, status,
       at, at + interval '3 seconds',
       CASE WHEN status = 'failed' THEN 'CorruptFile: the file ends early' END,
       CASE WHEN n %% 10 = 0 THEN gen_random_uuid() END
FROM (
    SELECT n, (ARRAY['pdf', 'dxf', 'ifc', 'step', 'pdf'])[1 + n %% 5] AS fmt,
           CASE WHEN n %% 50 = 0 THEN 'cancelled' WHEN n %% 12 = 0 THEN 'failed' ELSE 'completed' END
               AS status,
           now() - make_interval(secs => (n::double precision / %(rows)s) * 30 * 86400) AS at
    FROM generate_series(1, %(rows)s) AS n
) AS made
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    with bench_server() as server:
        url = server.create_database("web_bench")
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FILL.encode(), {"rows": args.rows})
            conn.execute(
                "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                "SELECT 'new-' || n || '.pdf', 's3://inbox/' || n, 10, 'pdf' FROM generate_series(1, 200) n"
            )
            some_job = conn.execute("SELECT id::text FROM extraction_jobs LIMIT 1").fetchone()
            assert some_job is not None
        vacuum_analyze(url, "extraction_jobs")
        with TestClient(create_app(url)) as client:
            first = client.get("/jobs").text
            cursor = first.split('id="next" href="/jobs?after=')[1].split('"')[0]
            pages = {
                "overview /": "/",
                "jobs, newest": "/jobs",
                "jobs, next page": f"/jobs?after={cursor}",
                "jobs, failed": "/jobs?status=failed",
                "jobs, format dxf": "/jobs?format=dxf",
                "jobs, file name search": "/jobs?q=sheet-99999",
                "a job": f"/jobs/{some_job[0]}",
                "failures": "/failures",
                "workers": "/workers",
            }
            print(f"{args.rows:,} finished rows; {args.repeat} requests per page")
            print(f"{'page':<26}{'median ms':>11}{'max ms':>9}  status")
            for name, path in pages.items():
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                print(f"{name:<26}{statistics.median(times):>11.1f}{max(times):>9.1f}  {answer.status_code}")
        with psycopg.connect(url) as conn:
            plan = conn.execute(
                b"EXPLAIN " + sql.WEB_JOB_PAGE.encode(),
                {"status": None, "format": None, "record_id": None, "text": None,
                 "after_at": None, "after_id": None, "limit": 51},
            ).fetchall()
        print("plan of the jobs page:")
        for (line,) in plan:
            print("   ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
