"""One function per operator command: open the database, call ``pgqueue.operations``, show the
answer with ``pgqueue.cli_output``, return the exit code.

Exit codes scripts can trust: 0 done; 1 not found or nothing matched; 2 usage, input or settings
error; 3 database unreachable. Every failure is one line on stderr that says what to do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from pgqueue import cli_output, extractors, file_jobs, manifest, operations
from pgqueue.control import job_key
from pgqueue.database import connect
from pgqueue.embedded import EmbeddedPostgresError
from pgqueue.embedded_sharing import EmbeddedNotRunning, live_worker_roots, using_embedded
from pgqueue.settings import Settings
from pgqueue.storage.urls import redact

OK = 0
NOT_FOUND = 1
USAGE = 2
UNREACHABLE = 3


class CommandError(Exception):
    """Stops a command with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class QueueTarget:
    url: str
    embedded_dir: Path | None
    """The embedded PostgreSQL's data folder, when the queue is there."""


@contextmanager
def queue_target(settings: Settings) -> Iterator[QueueTarget]:
    """The configured database; without ``DATABASE_URL``, the embedded PostgreSQL that a
    worker (or ``pgqueue database``) runs in ``data_dir``, kept running while the block runs."""
    if settings.database_url:
        yield QueueTarget(settings.database_url, None)
        return
    with ExitStack() as stack:
        try:
            shared = stack.enter_context(using_embedded(settings.data_dir, start=False))
        except EmbeddedNotRunning:
            raise CommandError(
                f"DATABASE_URL is not set and no embedded PostgreSQL runs in {settings.data_dir}: "
                "start `python worker.py` (or `pgqueue database`) in this folder, or give "
                "--database-url postgresql://user@host/db", USAGE,
            ) from None
        except (EmbeddedPostgresError, OSError) as exc:
            raise CommandError(f"cannot use the embedded PostgreSQL in {settings.data_dir}: "
                               f"{exc}", UNREACHABLE) from None
        yield QueueTarget(shared.url, shared.server.base_dir)


@contextmanager
def database(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the queue's database, with failures turned into
    ``CommandError``s that say what to do."""
    with queue_target(settings) as target, connected(target.url, settings) as conn:
        yield conn


@contextmanager
def connected(url: str, settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = connect(url, settings.schema_name, connect_timeout=10)
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


# --- the database itself ----------------------------------------------------------------------


def migrate(settings: Settings) -> int:
    from pgqueue.migrate import upgrade

    with queue_target(settings) as target:
        try:
            upgrade(target.url, settings.schema_name)
        except psycopg.OperationalError as exc:
            raise CommandError(f"cannot reach the database ({_reason(exc)}): check DATABASE_URL "
                               "and that PostgreSQL is running", UNREACHABLE) from None
    print(f"pgqueue: migrated schema {settings.schema_name!r} to the latest revision")
    return OK


def run_embedded_database(settings: Settings) -> int:
    """Run (or join) the embedded PostgreSQL, migrated, until SIGINT or SIGTERM."""
    from pgqueue import logs
    from pgqueue.migrate import upgrade

    logs.configure(settings.log_format, settings.log_level)  # on stderr: stdout gets the URL
    if settings.database_url:
        raise CommandError("`pgqueue database` runs the embedded PostgreSQL; unset DATABASE_URL "
                           "(or --database-url) to use it", USAGE)
    # Blocked from the start, so a signal sent while the server starts is not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with using_embedded(settings.data_dir, start=True) as shared:
            upgrade(shared.url, settings.schema_name)
            print(shared.url, flush=True)
            cli_output.note(f"embedded PostgreSQL {'started' if shared.started_here else 'shared'} "
                            f"(data in {shared.server.base_dir}); Ctrl-C or SIGTERM stops it "
                            "once no worker or command uses it")
            received = signal.sigwait({signal.SIGINT, signal.SIGTERM})
            cli_output.note(f"{signal.Signals(received).name}: leaving the embedded PostgreSQL")
    except EmbeddedPostgresError as exc:
        raise CommandError(f"the embedded PostgreSQL: {exc}", UNREACHABLE) from None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    return OK


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


def jobs_show(settings: Settings, job_id: str, as_json: bool, full: bool = False) -> int:
    key = _id(job_id)
    with database(settings) as conn:
        job = operations.show_job(conn, key)
    if job is None:
        raise CommandError(f"no job {key}", NOT_FOUND)
    if as_json:
        cli_output.print_json(job)
    else:
        cli_output.render_job(job, full)
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
    with queue_target(settings) as target:
        hint = _check_workers_may_read(resolution.local_files, settings, target)
        with connected(target.url, settings) as conn, \
                cli_output.progress(len(resolution.requests), "enqueueing") as advance:
            summary = operations.enqueue_each(conn, resolution.requests, advance)
    if as_json:
        cli_output.print_json({
            "jobs": [{"id": job.id, "status": job.status, "existing": job.existing,
                      "filename": request.filename, "file_url": redact(request.file_url),
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


def _check_workers_may_read(
    files: Sequence[Path], settings: Settings, target: QueueTarget
) -> str | None:
    """Refuse, before anything is written, local files that no worker may read.

    On the embedded database the workers say which folders they read (a worker started later
    from here reads PGQUEUE_FILE_ROOTS, or this folder). Elsewhere the workers' roots are known
    only as this command's own PGQUEUE_FILE_ROOTS; without it, a note says what to check.
    """
    if not files:
        return None
    setting = "PGQUEUE_FILE_ROOTS"
    if target.embedded_dir is not None:
        live = live_worker_roots(target.embedded_dir)
        roots = live if live is not None else [list(settings.file_roots) or [Path.cwd()]]
        which = "the running workers read" if live is not None else \
            "a worker started from this folder would read"
    elif settings.file_roots:
        roots, which = [list(settings.file_roots)], f"{setting} here says"
    else:
        return (f"the workers read file:// links only inside their {setting}; give this command "
                f"the same {setting} and it checks the files before enqueueing them")
    outside = file_jobs.outside_roots(files, roots)
    if not outside:
        return None
    folder = os.path.commonpath([str(path.parent) for path in outside])
    reads = "; ".join(", ".join(str(root) for root in group) or "nothing" for group in roots)
    raise CommandError(
        f"nothing enqueued: {len(outside)} files lie outside the folders workers may read "
        f"(first {cli_output.quoted(str(outside[0]))}; {which} {reads}): start the workers "
        f"with {setting}={folder} (or a folder above it)", USAGE,
    )


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
    except manifest.ManifestMissing as exc:
        raise CommandError(str(exc), NOT_FOUND) from None
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


def web(settings: Settings, host: str, port: int, token: str | None, read_only: bool) -> int:
    """Serve the dashboard until Ctrl-C (``pgqueue web``)."""
    try:
        from pgqueue.web.serve import WebSettingsError, build, serve
    except ImportError as exc:
        raise CommandError(
            f"the dashboard needs the web extra ({exc.name} is missing): "
            'pip install "pgqueue[web]"', USAGE,
        ) from None
    with queue_target(settings) as target:
        try:
            build(target.url, host=host, token=token, read_only=read_only, schema=settings.schema_name)
        except WebSettingsError as exc:
            raise CommandError(str(exc), USAGE) from None
        cli_output.note(f"the pgqueue dashboard serves http://{host}:{port}/ (Ctrl-C stops it)")
        serve(target.url, host=host, port=port, token=token, read_only=read_only,
              schema=settings.schema_name)
    return 0
