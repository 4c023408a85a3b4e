"""How the ``pgqueue`` command shows what it did: rich tables for people, JSON for scripts.

Data goes to stdout; notes, warnings, errors and progress bars go to stderr, so
``pgqueue ... --json | jq`` always reads clean JSON.

Every value read from a job row (filenames, URLs, error messages, results) was written by
someone else: it is shown as plain ``Text`` (never as Rich markup, so ``[bold]`` stays
``[bold]`` and ``[/oops]`` cannot break a page) with its control and bidi characters escaped
(``pgqueue.inert_text``), so it cannot move the cursor, clear the screen or make a link.
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
from pgqueue.inert_text import escape_json_text, inert
from pgqueue.operations import JobPage, StatusReport
from pgqueue.priority import Priority
from pgqueue.result_summary import summarize
from pgqueue.storage.urls import redact

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
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, markup=False, emoji=False)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)


def stored(value: object, style: str = "") -> Text:
    """A value from the database as inert text."""
    return Text(inert(value), style=style)


def quoted(value: str) -> str:
    """A value from a file or a row inside one of our messages: quoted and inert."""
    return inert(repr(value))


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
    text = json.dumps(data, default=_plain, indent=2, ensure_ascii=False)
    sys.stdout.write(escape_json_text(text) + "\n")
    sys.stdout.flush()


# --- messages ---------------------------------------------------------------------------------


def error(message: str) -> None:
    """One line on stderr, prefixed like every other pgqueue error."""
    print(f"pgqueue: {inert(message)}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    stderr().print(Text("note: ", style="bold yellow") + Text(inert(message)))


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
    return stored(status, STATUS_STYLES.get(status, ""))


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    age = (datetime.now(UTC) - moment).total_seconds()
    if age >= 0:
        return f"{describe(age)} ago"
    return f"in {describe(-age)}"


def _short(text: str | None, width: int = 60) -> Text:
    if not text:
        return Text("")
    line = inert(" ".join(text.split()))
    return Text(line if len(line) <= width else line[: width - 1] + "…")


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
        counts.add_row(stored(fmt), *[str(by_cell.get((fmt, status), 0)) for status in statuses])
    if not formats:
        counts.add_row("(no jobs)", *["0"] * len(statuses))
    console.print(counts)

    workers = Table(title=f"Live workers ({len(report.workers)})", title_justify="left")
    for name in ("worker", "host", "pid", "slots", "busy", "heartbeat"):
        workers.add_column(name, justify="right" if name in ("pid", "slots", "busy") else "left")
    for row in report.workers:
        workers.add_row(stored(row["worker_id"][:8]), stored(row["hostname"]), str(row["pid"]),
                        str(row["slots"]),
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
            reasons.add_row(str(row["jobs"]), stored(row["error_type"]), _short(row["message_prefix"]),
                            _when(row["last_seen"]))
        console.print(reasons)


# --- jobs -------------------------------------------------------------------------------------


def render_job_page(page: JobPage) -> None:
    """Each job as a short block that fits 80 columns and hides nothing: a line of facts, the
    whole filename, and the error (wrapped) when there is one."""
    console = stdout()
    for job in page.jobs:
        console.print(Text.assemble(
            (inert(job["id"]), "bold"), "  ", _status(job["status"]), "  ", stored(job["format"]),
            "  ", f"{job['retry_count']}/{job['max_retries']} retries",
        ))
        console.print(Text("  ") + stored(job["filename"]))
        times = f"  created {_when(job['created_at'])}"
        if job["completed_at"] is not None:
            times += f", finished {_when(job['completed_at'])}"
        console.print(Text(times, style="dim"))
        if job["error_message"]:
            console.print(Text("  error: ", style="red") + _short(job["error_message"], 300))
    last = page.offset + len(page.jobs)
    shown = f"jobs {page.offset + 1}-{last} of {page.total}" if page.jobs else f"no jobs of {page.total}"
    hint = f"; next page: --offset {last}" if last < page.total else ""
    stderr().print(f"{shown}{hint}")


def render_job(job: JobInfo, full: bool = False) -> None:
    """One job: its row and error history, and a summary of its result (all of it with
    ``full``)."""
    console = stdout()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    rows: list[tuple[str, Text]] = [
        ("id", stored(job.id)), ("status", _status(job.status)), ("file", stored(job.filename)),
        ("url", stored(redact(job.file_url))), ("size", Text(f"{job.file_size:,} bytes")),
        ("format", stored(job.format)), ("record", stored(job.record_id or "-")),
        ("attachment", stored(job.attachment_id or "-")),
        ("options", stored(json.dumps(job.options, ensure_ascii=False))),
        ("tries", Text(f"{job.retry_count} of {job.max_retries} retries used")),
        ("created", Text(f"{job.created_at.isoformat()} ({_when(job.created_at)})")),
        ("started", Text(_when(job.started_at))), ("finished", Text(_when(job.completed_at))),
    ]
    if job.status == "pending":
        rows.append(("due", Text(_when(job.next_retry_at))))
    rows.append(("priority", Text(_priority(job.priority))))
    if job.superseded_by:
        rows.append(("superseded by", stored(job.superseded_by)))
    if job.extractor:
        rows.append(("extractor", stored(f"{job.extractor} version {job.extractor_version}")))
    if job.worker_id:
        rows.append(("worker", stored(job.worker_id)))
    if job.error_message:
        rows.append(("error", stored(job.error_message)))
    if job.result is not None and not full:
        summary = summarize(job.result) if isinstance(job.result, dict) else "not a JSON object"
        rows.append(("result", stored(summary) + Text("  (--full shows all of it)", style="dim")))
    for label, value in rows:
        facts.add_row(label, value)
    console.print(Panel(facts, title=Text(f"job {inert(job.id)}"), title_align="left"))
    if job.error_history:
        history = Table(title="Error history", title_justify="left")
        for name in ("attempt", "at", "error", "message", "retried"):
            history.add_column(name, overflow="fold")
        for entry in job.error_history:
            history.add_row(stored(entry.get("attempt", "")), stored(entry.get("at", "")),
                            stored(entry.get("error_type", "")), stored(entry.get("message", "")),
                            "yes" if entry.get("retried") else "no")
        console.print(history)
    if job.result is not None and full:
        console.print(Text("Result", style="bold"))
        text = json.dumps(job.result, indent=2, ensure_ascii=False)
        console.print(Text(escape_json_text(text)))


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
        table.add_row(stored(row["format"]), stored(row["file"]), _status(row["status"]),
                      describe(duration) if duration is not None else "-", stored(row["summary"]))
    stdout().print(table)
