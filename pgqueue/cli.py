"""The ``pgqueue`` command. It only parses arguments and calls one function per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pgqueue.durations import InvalidDuration, parse_duration
from pgqueue.lifecycle import ExtractionJobStatus
from pgqueue.settings import Settings, SettingsError, env_name, load_settings


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, named like the field; the environment variable is the default."""
    group = parser.add_argument_group("settings (flags override environment variables)")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} [env {env_name(name)}]"
        if field.annotation is bool:
            group.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        else:
            group.add_argument(flag, dest=name, default=None, metavar="VALUE", help=help_text)


def settings_from(arguments: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(arguments, name) for name in Settings.model_fields if hasattr(arguments, name)
    }
    return load_settings(overrides)


def command_worker(arguments: argparse.Namespace) -> int:
    from pgqueue.commands import CommandError
    from pgqueue.worker.main import SchemaMissing
    from pgqueue.worker.start import start_worker

    try:
        return start_worker(settings_from(arguments))
    except SchemaMissing as exc:
        raise CommandError(str(exc), 2) from None


def command_migrate(arguments: argparse.Namespace) -> int:
    from pgqueue.migrate import upgrade

    settings = settings_from(arguments)
    if not settings.database_url:
        raise SettingsError("DATABASE_URL is not set: give the database to migrate (--database-url)")
    upgrade(settings.database_url, settings.schema_name)
    print(f"pgqueue: migrated schema {settings.schema_name!r} to the latest revision")
    return 0


def command_enqueue(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    given = commands.EnqueueInput(
        inputs=arguments.inputs, forced_format=arguments.format, options=arguments.options,
        manifest=arguments.manifest, skip_bad=arguments.skip_bad, max_retries=arguments.max_retries,
    )
    return commands.enqueue(settings_from(arguments), given, arguments.json)


def command_status(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    return commands.status(settings_from(arguments), arguments.json)


def command_jobs_list(arguments: argparse.Namespace) -> int:
    from pgqueue import commands
    from pgqueue.operations import JobFilter

    where = JobFilter(arguments.status or (), arguments.format or (), arguments.record, arguments.since)
    return commands.jobs_list(settings_from(arguments), where, arguments.limit, arguments.offset,
                              arguments.json)


def command_jobs_show(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    return commands.jobs_show(settings_from(arguments), arguments.job_id, arguments.json)


def command_retry(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    if arguments.all_failed == (arguments.job_id is not None):
        raise SettingsError("give a job id, or --all-failed (with --format and --since to narrow it)")
    if arguments.job_id is not None:
        if arguments.format or arguments.since:
            raise SettingsError("--format and --since go with --all-failed, not with a job id")
        return commands.retry(settings_from(arguments), arguments.job_id, arguments.json)
    return commands.retry_failed(settings_from(arguments), arguments.format or (), arguments.since,
                                 arguments.json)


def command_cancel(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    return commands.cancel(settings_from(arguments), arguments.job_id, arguments.json)


def command_purge(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    given = commands.PurgeInput(
        older_than=arguments.older_than, batch=arguments.batch,
        include_latest=arguments.include_latest, dry_run=arguments.dry_run, confirmed=arguments.yes,
    )
    return commands.purge(settings_from(arguments), given, arguments.json)


def command_reextract(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    given = commands.ReextractInput(
        format=arguments.format, before_version=arguments.before_version, since=arguments.since,
        until=arguments.until, dry_run=arguments.dry_run, batch=arguments.batch,
    )
    return commands.reextract(settings_from(arguments), given, arguments.json)


def command_demo(arguments: argparse.Namespace) -> int:
    from pgqueue import demo

    return demo.run(arguments.data_dir, slots=arguments.slots)


def duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except InvalidDuration as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MAX_COUNT = 1_000_000_000  # fits PostgreSQL's integer, and more rows than any page or batch needs


def positive(text: str) -> int:
    return _whole(text, 1)


def non_negative(text: str) -> int:
    return _whole(text, 0)


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if not least <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from {least} to {MAX_COUNT:,}, got {text!r}"
        )
    return value


def database_flags(json_flag: bool = True) -> argparse.ArgumentParser:
    """Flags every command that talks to the queue shares."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("database")
    group.add_argument("--database-url", dest="database_url", default=None,
                       help=f"PostgreSQL URL [env {env_name('database_url')}]")
    group.add_argument("--schema-name", dest="schema_name", default=None,
                       help=f"schema holding pgqueue's tables [env {env_name('schema_name')}]")
    if json_flag:
        parent.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parent


def add_operator_commands(commands: Any) -> None:
    shared = database_flags()
    statuses = [status.value for status in ExtractionJobStatus]

    enqueue = commands.add_parser(
        "enqueue", parents=[shared], help="enqueue local files, globs, URLs or a manifest",
        description="Enqueue files. Local files become file:// URLs and their format is read "
                    "from their content; URLs take it from their extension.",
    )
    enqueue.add_argument("inputs", nargs="*", metavar="FILE|GLOB|URL")
    enqueue.add_argument("--format", default=None, help="force this format for every input")
    enqueue.add_argument("--options", default=None, metavar="JSON", help="extraction options, a JSON object")
    enqueue.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                         help="CSV or JSON lines: filename,file_url,file_size,format"
                              "[,options,record_id,field_id,attachment_id,max_retries]")
    enqueue.add_argument("--skip-bad", action="store_true",
                         help="enqueue the good inputs or lines and report the bad ones")
    enqueue.add_argument("--max-retries", type=int, default=3, help="retries per job (default 3)")
    enqueue.set_defaults(handler=command_enqueue)

    status = commands.add_parser("status", parents=[shared],
                                 help="counts, queue lag, throughput, workers, failure reasons")
    status.set_defaults(handler=command_status)

    jobs = commands.add_parser("jobs", help="list jobs or show one")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    listing = jobs_commands.add_parser("list", parents=[shared], help="list jobs, newest first")
    listing.add_argument("--status", action="append", choices=statuses, help="repeatable")
    listing.add_argument("--format", action="append", help="repeatable")
    listing.add_argument("--record", default=None, metavar="RECORD_ID")
    listing.add_argument("--since", type=duration, default=None, metavar="DURATION",
                         help="created within this long, e.g. 30m, 2h, 7d")
    listing.add_argument("--limit", type=positive, default=50)
    listing.add_argument("--offset", type=non_negative, default=0)
    listing.set_defaults(handler=command_jobs_list)
    show = jobs_commands.add_parser("show", parents=[shared],
                                    help="one job: its row, error history and result")
    show.add_argument("job_id", metavar="ID")
    show.set_defaults(handler=command_jobs_show)

    retry = commands.add_parser("retry", parents=[shared],
                                help="retry a failed or cancelled job, or all failed jobs")
    retry.add_argument("job_id", nargs="?", default=None, metavar="ID")
    retry.add_argument("--all-failed", action="store_true", help="every failed job (filtered)")
    retry.add_argument("--format", action="append", help="with --all-failed; repeatable")
    retry.add_argument("--since", type=duration, default=None, metavar="DURATION",
                       help="with --all-failed: failed within this long")
    retry.set_defaults(handler=command_retry)

    cancel = commands.add_parser("cancel", parents=[shared], help="cancel a pending or running job")
    cancel.add_argument("job_id", metavar="ID")
    cancel.set_defaults(handler=command_cancel)

    purge = commands.add_parser(
        "purge", parents=[shared],
        help="delete failed, cancelled and superseded jobs older than a duration",
        description="Deletes what retention deletes, now: failed and cancelled jobs, and results "
                    "a newer result of the same attachment replaced. Latest results are kept.",
    )
    purge.add_argument("--older-than", type=duration, required=True, metavar="DURATION",
                       help="e.g. 30d; jobs that finished longer ago are deleted")
    purge.add_argument("--batch", type=positive, default=1000, help="rows deleted per statement")
    purge.add_argument("--include-latest", action="store_true",
                       help="also delete latest results and completed jobs without an attachment "
                            "(asks first)")
    purge.add_argument("--yes", action="store_true", help="confirm --include-latest without asking")
    purge.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    purge.set_defaults(handler=command_purge)

    reextract = commands.add_parser(
        "reextract", parents=[shared],
        help="enqueue bulk jobs for results an older extractor version wrote",
        description="For each attachment whose latest result of this format came from an older "
                    "extractor version, enqueue a bulk job (skipping attachments with an active "
                    "job). The old result stays readable until the new one completes.",
    )
    reextract.add_argument("--format", required=True, help="e.g. dxf")
    reextract.add_argument("--before-version", type=positive, default=None, metavar="V",
                           help="results of versions below V (default: the current version)")
    reextract.add_argument("--since", type=duration, default=None, metavar="DURATION",
                           help="results that finished within this long, e.g. 30d")
    reextract.add_argument("--until", type=duration, default=None, metavar="DURATION",
                           help="results that finished longer ago than this")
    reextract.add_argument("--dry-run", action="store_true", help="count; enqueue nothing")
    reextract.add_argument("--batch", type=positive, default=1000, help="results per statement")
    reextract.set_defaults(handler=command_reextract)

    demo = commands.add_parser(
        "demo", help="run pgqueue end to end on generated sample files (nothing else needed)"
    )
    demo.add_argument("--data-dir", type=Path, default=None,
                      help="keep the embedded PostgreSQL and samples here (default: a temp folder)")
    demo.add_argument("--slots", type=positive, default=2, help="jobs the demo worker runs at once")
    demo.set_defaults(handler=command_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgqueue", description="pgqueue: a PostgreSQL-native job queue for file-extraction jobs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a worker (same as python worker.py)")
    add_settings_flags(worker)
    worker.set_defaults(handler=command_worker)

    migrate = commands.add_parser("migrate", help="apply pgqueue's migrations to DATABASE_URL")
    migrate.add_argument("--database-url", dest="database_url", default=None)
    migrate.add_argument("--schema-name", dest="schema_name", default=None)
    migrate.set_defaults(handler=command_migrate)

    add_operator_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pgqueue.commands import CommandError

    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        result: int = arguments.handler(arguments)
        return result
    except SettingsError as exc:
        print(f"pgqueue: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"pgqueue: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
