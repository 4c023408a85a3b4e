"""One function per operator command: open the database, call ``pgqueue.operations``, show the
answer with ``pgqueue.cli_output``, return the exit code.

Exit codes scripts can trust: 0 done; 1 not found or nothing matched; 2 usage, input or settings
error; 3 database unreachable. Every failure is one line on stderr that says what to do.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from pgqueue import cli_output, extractors, file_jobs, manifest, operations
from pgqueue.control import job_key
from pgqueue.database import connect
from pgqueue.settings import Settings

OK = 0
NOT_FOUND = 1
USAGE = 2
UNREACHABLE = 3


class CommandError(Exception):
    """Stops a command with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def database(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the configured database, with failures turned into
    ``CommandError``s that say what to do."""
    if not settings.database_url:
        raise CommandError(
            "DATABASE_URL is not set: set it, or give --database-url postgresql://user@host/db",
            USAGE,
        )
    try:
        conn = connect(settings.database_url, settings.schema_name, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach the database ({_reason(exc)}): check DATABASE_URL and that PostgreSQL "
            "is running", UNREACHABLE,
        ) from None
    try:
        with conn:
            yield conn
    except psycopg.errors.UndefinedTable as exc:
        raise CommandError(
            f"{_reason(exc)} in schema {settings.schema_name!r}: run `pgqueue migrate` on this "
            "database (or set PGQUEUE_SCHEMA_NAME to the schema pgqueue was migrated into)",
            USAGE,
        ) from None
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"lost the database connection ({_reason(exc)}): check that PostgreSQL is running "
            "and run the command again", UNREACHABLE,
        ) from None


def _reason(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return re.sub(r"^connection failed:\s*", "", text)


def _id(job_id: str) -> str:
    key = job_key(job_id)
    if key is None:
        raise CommandError(f"{job_id!r} is not a job id: job ids are UUIDs (see `pgqueue jobs list`)", USAGE)
    return key


# --- read commands ----------------------------------------------------------------------------


def status(settings: Settings, as_json: bool) -> int:
    with database(settings) as conn:
        report = operations.status(conn)
    if as_json:
        cli_output.print_json(report)
    else:
        cli_output.render_status(report)
    return OK


def jobs_list(
    settings: Settings, where: operations.JobFilter, limit: int, offset: int, as_json: bool
) -> int:
    if where.record_id is not None and job_key(where.record_id) is None:
        raise CommandError(f"--record {where.record_id!r} is not a record id (a UUID)", USAGE)
    with database(settings) as conn:
        page = operations.list_jobs(conn, where, limit, offset)
    if as_json:
        cli_output.print_json(page)
    else:
        cli_output.render_job_page(page)
    return OK if page.jobs else NOT_FOUND


def jobs_show(settings: Settings, job_id: str, as_json: bool) -> int:
    key = _id(job_id)
    with database(settings) as conn:
        job = operations.show_job(conn, key)
    if job is None:
        raise CommandError(f"no job {key}", NOT_FOUND)
    if as_json:
        cli_output.print_json(job)
    else:
        cli_output.render_job(job)
    return OK


# --- commands that change jobs ----------------------------------------------------------------


def retry(settings: Settings, job_id: str, as_json: bool) -> int:
    key = _id(job_id)
    with database(settings) as conn:
        change = operations.retry_job(conn, key)
    return _report_change(change, "retry", as_json)


def retry_failed(
    settings: Settings, formats: Sequence[str], since: timedelta | None, as_json: bool
) -> int:
    with database(settings) as conn:
        retried = operations.retry_failed(conn, formats, since)
    if as_json:
        cli_output.print_json({"retried": retried, "count": len(retried)})
    else:
        cli_output.stdout().print(f"{len(retried)} failed jobs will be retried now")
    return OK if retried else NOT_FOUND


def cancel(settings: Settings, job_id: str, as_json: bool) -> int:
    key = _id(job_id)
    with database(settings) as conn:
        change = operations.cancel_job(conn, key)
    return _report_change(change, "cancel", as_json)


def _report_change(change: Any, action: str, as_json: bool) -> int:
    message = cli_output.change_message(change, action)
    if as_json:
        cli_output.print_json({**vars(change), "message": message})
    if not change.changed:
        if not as_json:
            cli_output.error(message)
        return NOT_FOUND
    if not as_json:
        cli_output.stdout().print(message)
    return OK


@dataclass(frozen=True)
class PurgeInput:
    older_than: timedelta
    batch: int
    include_latest: bool
    dry_run: bool
    confirmed: bool


def purge(settings: Settings, given: PurgeInput, as_json: bool) -> int:
    with database(settings) as conn:
        counts = operations.purge_counts(conn, given.older_than)
        if given.dry_run:
            _report_purge(given, counts, None, as_json)
            return OK
        if given.include_latest and counts.latest + counts.unlinked and not given.confirmed:
            _confirm_latest(counts)
        deleted = operations.purge(conn, given.older_than, given.batch, given.include_latest)
    _report_purge(given, counts, deleted, as_json)
    return OK


def _confirm_latest(counts: operations.PurgeCounts) -> None:
    question = (f"--include-latest deletes {counts.latest} latest results of attachments and "
                f"{counts.unlinked} completed jobs without an attachment; PyBase cannot read "
                "them afterwards")
    if not sys.stdin.isatty():
        raise CommandError(f"{question}: give --yes to confirm", USAGE)
    answer = input(f"{question}. Type 'yes' to delete them: ")
    if answer.strip().lower() != "yes":
        raise CommandError("nothing deleted", NOT_FOUND)


def _report_purge(
    given: PurgeInput, counts: operations.PurgeCounts, deleted: int | None, as_json: bool
) -> None:
    if as_json:
        cli_output.print_json({
            "deleted": deleted, "would_delete": counts.deleted_by(given.include_latest),
            "older_than_seconds": given.older_than.total_seconds(),
            "include_latest": given.include_latest, "dry_run": given.dry_run,
            "finished_before_cutoff": vars(counts),
        })
        return
    kept = "" if given.include_latest else (
        f"; kept: {counts.latest} latest results, {counts.unlinked} completed jobs without an "
        "attachment")
    breakdown = (f"{counts.failed} failed, {counts.cancelled} cancelled, "
                 f"{counts.superseded} superseded results")
    if given.include_latest:
        breakdown += f", {counts.latest} latest results, {counts.unlinked} without an attachment"
    done = (f"would delete {counts.deleted_by(given.include_latest)}" if deleted is None
            else f"deleted {deleted}")
    cli_output.stdout().print(
        f"{done} finished jobs older than {given.older_than} ({breakdown}){kept}")


@dataclass(frozen=True)
class ReextractInput:
    format: str
    before_version: int | None
    since: timedelta | None
    until: timedelta | None
    dry_run: bool
    batch: int


def reextract(settings: Settings, given: ReextractInput, as_json: bool) -> int:
    from pgqueue.reextract import InvalidReextraction
    from pgqueue.reextract import reextract as run

    try:
        with database(settings) as conn:
            def select(dry_run: bool, advance: Callable[[int], None] = lambda done: None) -> Any:
                return run(conn, given.format, given.before_version, given.since, given.until,
                           dry_run, given.batch, advance)

            # A rolled-back pass counts what there is: the total of the progress bar, and
            # the whole answer of a dry run.
            found = select(dry_run=True)
            done = found if given.dry_run else dataclasses.replace(found, enqueued=0, dry_run=False)
            if not given.dry_run and found.enqueued:
                with cli_output.progress_always(found.outdated, "re-enqueueing") as advance:
                    done = select(dry_run=False, advance=advance)
    except InvalidReextraction as exc:
        raise CommandError(str(exc), USAGE) from None
    if as_json:
        cli_output.print_json({**vars(done), "already_active": done.already_active})
    else:
        verb = "would enqueue" if done.dry_run else "enqueued"
        cli_output.stdout().print(
            f"{done.outdated} latest {given.format} results from extractor versions before "
            f"{done.before_version}: {verb} {done.enqueued} bulk jobs; {done.already_active} "
            "attachments already had an active job")
    return OK


# --- enqueue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnqueueInput:
    inputs: Sequence[str]
    forced_format: str | None
    options: str | None
    manifest: Path | None
    skip_bad: bool
    max_retries: int


def enqueue(settings: Settings, given: EnqueueInput, as_json: bool) -> int:
    extractors.register_many(settings.extractors)
    known = extractors.formats()
    if given.forced_format is not None and given.forced_format not in known:
        raise CommandError(
            f"--format {given.forced_format!r} is not a known format; known: {', '.join(sorted(known))}",
            USAGE,
        )
    if given.manifest is not None:
        if given.inputs:
            raise CommandError("give files or --manifest, not both", USAGE)
        return _enqueue_manifest(settings, given.manifest, given.skip_bad, as_json)
    if not given.inputs:
        raise CommandError("nothing to enqueue: give files, globs, URLs, or --manifest FILE", USAGE)
    options = _options(given.options)
    resolution = file_jobs.resolve(given.inputs, given.forced_format, options, given.max_retries)
    for item in resolution.missing:
        cli_output.error(f"{item}: no such file (nothing matched)")
    for line in resolution.refused:
        cli_output.error(line)
    for line in resolution.notes:
        cli_output.note(line)
    problems = len(resolution.missing) + len(resolution.refused)
    if problems and not given.skip_bad:
        code = USAGE if resolution.refused else NOT_FOUND
        raise CommandError(f"nothing enqueued: {problems} inputs refused (--skip-bad enqueues the rest)", code)
    if not resolution.requests:
        raise CommandError("nothing enqueued: no file to enqueue", NOT_FOUND)
    with database(settings) as conn, \
            cli_output.progress(len(resolution.requests), "enqueueing") as advance:
        summary = operations.enqueue_each(conn, resolution.requests, advance)
    hint = file_jobs.file_roots_hint(resolution.local_files, settings.file_roots)
    if as_json:
        cli_output.print_json({
            "jobs": [{"id": job.id, "status": job.status, "existing": job.existing,
                      "filename": request.filename, "file_url": request.file_url,
                      "format": request.format}
                     for job, request in zip(summary.jobs, resolution.requests, strict=True)],
            "inserted": summary.inserted, "existing": summary.existing, "skipped_inputs": problems,
        })
    else:
        out = cli_output.stdout()
        for job, request in zip(summary.jobs, resolution.requests, strict=True):
            kept = " (already queued: kept the active job)" if job.existing else ""
            out.print(f"{job.id}  {request.format:<6} {request.filename}{kept}")
        out.print(f"enqueued {summary.inserted} jobs" + (f", {summary.existing} already queued" if summary.existing else ""))
    if hint:
        cli_output.note(hint)
    return OK


def _options(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--options is not valid JSON ({exc.msg}): give an object such as '{{\"tables\": true}}'", USAGE) from None
    if not isinstance(value, dict):
        raise CommandError("--options must be a JSON object such as '{\"tables\": true}'", USAGE)
    return value


def _enqueue_manifest(settings: Settings, path: Path, skip_bad: bool, as_json: bool) -> int:
    try:
        checked = manifest.check(path)
    except (manifest.ManifestUnreadable, OSError, UnicodeDecodeError) as exc:
        raise CommandError(str(exc), USAGE) from None
    for bad in checked.errors[:50]:
        cli_output.error(f"{path} {bad}")
    if checked.bad > 50:
        cli_output.error(f"{path}: {checked.bad - 50} more bad lines not shown")
    if checked.bad and not skip_bad:
        raise CommandError(
            f"nothing enqueued: {checked.bad} bad lines in {path}; fix them, or give --skip-bad "
            "to enqueue the good lines", USAGE,
        )
    if checked.good == 0:
        raise CommandError(f"nothing enqueued: no good line in {path}", USAGE)
    with database(settings) as conn, cli_output.progress(checked.good, "loading") as advance:
        result = operations.enqueue_many(conn, manifest.requests(path), advance)
    if as_json:
        cli_output.print_json({"inserted": result.inserted, "already_queued": result.skipped,
                               "bad_lines": checked.bad})
    else:
        cli_output.stdout().print(
            f"enqueued {result.inserted} jobs from {path}"
            + (f"; {result.skipped} attachments already had an active job" if result.skipped else "")
            + (f"; skipped {checked.bad} bad lines" if checked.bad else "")
        )
    return OK
