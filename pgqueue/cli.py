"""The ``pgqueue`` command. It only parses arguments and calls one function per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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
    from pgqueue.worker.start import start_worker

    return start_worker(settings_from(arguments))


def command_migrate(arguments: argparse.Namespace) -> int:
    from pgqueue.migrate import upgrade

    settings = settings_from(arguments)
    if not settings.database_url:
        raise SettingsError("DATABASE_URL is not set: give the database to migrate (--database-url)")
    upgrade(settings.database_url, settings.schema_name)
    print(f"pgqueue: migrated schema {settings.schema_name!r} to the latest revision")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgqueue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a worker (same as python worker.py)")
    add_settings_flags(worker)
    worker.set_defaults(handler=command_worker)

    migrate = commands.add_parser("migrate", help="apply pgqueue's migrations to DATABASE_URL")
    migrate.add_argument("--database-url", dest="database_url", default=None)
    migrate.add_argument("--schema-name", dest="schema_name", default=None)
    migrate.set_defaults(handler=command_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        result: int = arguments.handler(arguments)
        return result
    except SettingsError as exc:
        print(f"pgqueue: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
