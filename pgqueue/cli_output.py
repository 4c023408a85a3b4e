"""How the ``pgqueue`` command shows what it did: rich tables for people, JSON for scripts.

Data goes to stdout; notes, warnings, errors and progress bars go to stderr, so
``pgqueue ... --json | jq`` always reads clean JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pgqueue.control import JobChange, JobInfo
from pgqueue.durations import describe
from pgqueue.operations import JobPage, StatusReport
from pgqueue.priority import Priority

PROGRESS_FROM = 20  # files: fewer go by too fast for a bar to help

STATUS_STYLES = {
    "pending": "yellow",
    "processing": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "skipped": "dim",
}


def stdout() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


# --- JSON -------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_plain, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- messages ---------------------------------------------------------------------------------


def error(message: str) -> None:
    """One line on stderr, prefixed like every other pgqueue error."""
    print(f"pgqueue: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    stderr().print(Text("note: ", style="bold yellow") + Text(message))


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for ``total`` steps, when there are many and stderr is a
    terminal; yields the function that advances it by one step."""
    console = stderr()
    if total < PROGRESS_FROM or not console.is_terminal:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


@contextmanager
def progress_always(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (when it is a terminal) set to an absolute number of steps."""
    console = stderr()
    if not console.is_terminal:
        yield lambda completed: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.elapsed:.0f}s"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task, completed=completed)


# --- shared pieces ------------------------------------------------------------------------------


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    age = (datetime.now(UTC) - moment).total_seconds()
    if age >= 0:
        return f"{describe(age)} ago"
    return f"in {describe(-age)}"


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


# --- status -----------------------------------------------------------------------------------


def render_status(report: StatusReport) -> None:
    console = stdout()
    totals = report.totals
    console.print(Text.assemble(
        ("Queue  ", "bold"),
        *[piece for status, count in totals.items() for piece in ((f"{status} ", ""),
                                                                   (f"{count}   ", STATUS_STYLES[status]))],
    ))
    lag = describe(report.lag_seconds) if report.due_jobs else "-"
    console.print(f"Due now {report.due_jobs}, oldest due job waiting {lag}")
    put = report.throughput
    console.print(
        f"Finished last 5 min: {put['completed_5m']} completed, {put['failed_5m']} failed "
        f"({put['completed_5m'] / 5:.1f}/min)   last hour: {put['completed_1h']} completed, "
        f"{put['failed_1h']} failed ({put['completed_1h'] / 60:.1f}/min)"
    )
    console.print()

    formats = sorted({row["format"] for row in report.counts})
    counts = Table(title="Jobs by format and status", title_justify="left")
    counts.add_column("format")
    statuses = list(totals)
    for status in statuses:
        counts.add_column(status, justify="right", style=STATUS_STYLES[status])
    by_cell = {(row["format"], row["status"]): int(row["jobs"]) for row in report.counts}
    for fmt in formats:
        counts.add_row(fmt, *[str(by_cell.get((fmt, status), 0)) for status in statuses])
    if not formats:
        counts.add_row("(no jobs)", *["0"] * len(statuses))
    console.print(counts)

    workers = Table(title=f"Live workers ({len(report.workers)})", title_justify="left")
    for name in ("worker", "host", "pid", "slots", "busy", "heartbeat"):
        workers.add_column(name, justify="right" if name in ("pid", "slots", "busy") else "left")
    for row in report.workers:
        workers.add_row(row["worker_id"][:8], row["hostname"], str(row["pid"]), str(row["slots"]),
                        str(row["jobs_held"]), f"{describe(row['heartbeat_age_seconds'])} ago")
    if report.workers:
        console.print(workers)
    else:
        console.print("Live workers: none (start one with `pgqueue worker`)")

    if report.failure_reasons:
        reasons = Table(title="Top failure reasons", title_justify="left")
        reasons.add_column("jobs", justify="right")
        reasons.add_column("error")
        reasons.add_column("message")
        reasons.add_column("last seen")
        for row in report.failure_reasons:
            reasons.add_row(str(row["jobs"]), row["error_type"], _short(row["message_prefix"]),
                            _when(row["last_seen"]))
        console.print(reasons)


# --- jobs -------------------------------------------------------------------------------------


NARROW = 120  # columns: below this, the job list leaves out tries and creation time


def render_job_page(page: JobPage) -> None:
    console = stdout()
    wide = console.width >= NARROW
    names = ["id", "file", "format", "status", "tries", "created", "finished", "error"]
    if not wide:
        names = [name for name in names if name not in ("tries", "created")]
    table = Table(title_justify="left")
    for name in names:
        table.add_column(name, no_wrap=name != "error", min_width=36 if name == "id" else None,
                         max_width=30 if name == "file" else None, overflow="ellipsis")
    for job in page.jobs:
        cells = {
            "id": job["id"], "file": job["filename"], "format": job["format"],
            "status": _status(job["status"]), "tries": f"{job['retry_count']}/{job['max_retries']}",
            "created": _when(job["created_at"]), "finished": _when(job["completed_at"]),
            "error": _short(job["error_message"], 50),
        }
        table.add_row(*[cells[name] for name in names])
    console.print(table)
    last = page.offset + len(page.jobs)
    shown = f"jobs {page.offset + 1}-{last} of {page.total}" if page.jobs else f"no jobs of {page.total}"
    hint = f"; next page: --offset {last}" if last < page.total else ""
    stderr().print(f"{shown}{hint}")


def render_job(job: JobInfo) -> None:
    console = stdout()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    rows: list[tuple[str, Any]] = [
        ("id", job.id), ("status", _status(job.status)), ("file", job.filename),
        ("url", job.file_url), ("size", f"{job.file_size:,} bytes"), ("format", job.format),
        ("record", job.record_id or "-"), ("attachment", job.attachment_id or "-"),
        ("options", json.dumps(job.options)), ("tries", f"{job.retry_count} of {job.max_retries} retries used"),
        ("created", f"{job.created_at.isoformat()} ({_when(job.created_at)})"),
        ("started", _when(job.started_at)), ("finished", _when(job.completed_at)),
    ]
    if job.status == "pending":
        rows.append(("due", _when(job.next_retry_at)))
    rows.append(("priority", _priority(job.priority)))
    if job.superseded_by:
        rows.append(("superseded by", job.superseded_by))
    if job.extractor:
        rows.append(("extractor", f"{job.extractor} version {job.extractor_version}"))
    if job.worker_id:
        rows.append(("worker", job.worker_id))
    if job.error_message:
        rows.append(("error", job.error_message))
    for label, value in rows:
        facts.add_row(label, value)
    console.print(Panel(facts, title=f"job {job.id}", title_align="left"))
    if job.error_history:
        history = Table(title="Error history", title_justify="left")
        for name in ("attempt", "at", "error", "message", "retried"):
            history.add_column(name)
        for entry in job.error_history:
            history.add_row(str(entry.get("attempt", "")), str(entry.get("at", "")),
                            str(entry.get("error_type", "")), str(entry.get("message", "")),
                            "yes" if entry.get("retried") else "no")
        console.print(history)
    if job.result is not None:
        console.print(Text("Result", style="bold"))
        console.print_json(json.dumps(job.result, ensure_ascii=False))


def _priority(value: int) -> str:
    names = {int(level): level.name.lower() for level in Priority}
    return f"{value} ({names[value]})" if value in names else str(value)


def change_message(change: JobChange, action: str) -> str:
    """What a retry or cancel did, in words."""
    if not change.found:
        return f"no job {change.id}"
    if change.changed:
        return f"job {change.id} {'cancelled' if action == 'cancel' else 'will be retried now'}"
    if action == "cancel":
        return (f"job {change.id} is already {change.status}; "
                "only pending or processing jobs can be cancelled")
    return f"job {change.id} is {change.status}; only failed or cancelled jobs can be retried"


# --- demo -------------------------------------------------------------------------------------


def render_demo(rows: Sequence[dict[str, Any]]) -> None:
    table = Table(title="pgqueue demo", title_justify="left")
    for name in ("format", "file", "status", "duration", "extracted"):
        table.add_column(name, justify="right" if name == "duration" else "left")
    for row in rows:
        duration = row.get("duration")
        table.add_row(row["format"], row["file"], _status(row["status"]),
                      describe(duration) if duration is not None else "-", row["summary"])
    stdout().print(table)
