"""Every setting of pgqueue, in one place.

Each field reads from an environment variable (``DATABASE_URL`` and ``PGQUEUE_<NAME>``) and can
be overridden by a CLI flag of the same name (``--slots 8``). A bad value stops start-up with a
message naming the variable. ``pgqueue worker --help`` and the README list the same fields.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pgqueue.inert_text import inert

ENV_PREFIX = "PGQUEUE_"
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
SECRET_FIELDS = frozenset({"database_url", "werk24_token"})
"""Their values may hold passwords: an error names the setting, not the value."""


class SettingsError(ValueError):
    """A setting has a value pgqueue cannot use."""


class Settings(BaseModel):
    """Worker, storage and extraction settings. Immutable and picklable (children get a copy)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- database ----------------------------------------------------------------------------
    database_url: str | None = Field(
        None, description="PostgreSQL URL (env DATABASE_URL). Unset: start an embedded PostgreSQL."
    )
    schema_name: str = Field(
        "public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Schema holding pgqueue's tables."
    )
    data_dir: Path = Field(
        Path(".pgqueue"), description="Where the embedded PostgreSQL keeps its data."
    )

    # --- worker ------------------------------------------------------------------------------
    slots: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1, le=1000,
                       description="Jobs run at once by one worker.")
    isolation: Literal["process", "inline"] = Field(
        "process", description="Run extractors in child processes (process) or in threads (inline)."
    )
    poll_interval: float = Field(10.0, gt=0, description="Seconds between polls when idle (jittered).")
    poll_only: bool = Field(False, description="Never LISTEN; only poll (PgBouncer transaction mode).")
    claim_connection: bool = Field(
        False, description="Claims get a connection of their own (3 per worker, not 2): faster drains of very short jobs."
    )
    heartbeat_interval: float = Field(10.0, gt=0, description="Seconds between heartbeats.")
    worker_timeout: float = Field(30.0, gt=0, description="A worker silent this long is lost.")
    maintenance_interval: float = Field(
        10.0, gt=0, description="Seconds between maintenance runs (rescue, pruning)."
    )
    shutdown_grace: float = Field(30.0, ge=0, description="Seconds running jobs get after SIGTERM.")
    flush_batch: int = Field(200, ge=1, description="Write-backs per statement, at most.")
    flush_delay: float = Field(0.002, ge=0, description="Seconds a write-back may wait for company.")
    claim_wait: float = Field(
        0.002, ge=0, description="Seconds a claim may wait for every slot to free (batching)."
    )
    burst: bool = Field(False, description="Process every due job, then exit.")
    startup_wait: float = Field(
        30.0, ge=0, le=86400,
        description="With --burst: seconds to wait for an unreachable database, then exit 3.",
    )
    reserved_share: float = Field(
        0.0, ge=0, lt=1,
        description="Share of a worker's slots (rounded down) kept for jobs less urgent than "
                    "interactive while any are due. 0: strict priority.",
    )

    # --- retries -----------------------------------------------------------------------------
    backoff_base: float = Field(30.0, ge=0, description="Seconds before the first retry.")
    backoff_factor: float = Field(4.0, ge=1, description="Each retry waits this many times longer.")
    backoff_cap: float = Field(3600.0, ge=0, description="No retry waits longer (seconds).")
    backoff_jitter: float = Field(0.25, ge=0, le=1, description="Random extra wait, as a fraction.")

    # --- retention ---------------------------------------------------------------------------
    retention_days: float = Field(
        30.0, gt=0,
        description="Failed, cancelled and superseded jobs older than this are pruned "
                    "(an attachment's latest result is kept).",
    )
    retention_unlinked_days: float | None = Field(
        None, gt=0,
        description="Completed jobs without an attachment older than this are pruned. Unset: kept.",
    )
    prune_batch: int = Field(1000, ge=1, description="Rows deleted per pruning statement.")

    # --- isolation limits ---------------------------------------------------------------------
    job_timeout: float = Field(300.0, gt=0, description="Wall-clock seconds one extraction may take.")
    format_timeouts: dict[str, float] = Field(
        default_factory=dict, description="Per-format timeouts, e.g. 'ifc=900,pdf=120'."
    )
    memory_limit_mb: int = Field(2048, ge=64, description="Memory one extraction may use (MiB).")
    child_max_jobs: int = Field(200, ge=1, description="A child process is replaced after this many jobs.")

    # --- files -------------------------------------------------------------------------------
    max_file_size: int = Field(100 * 1024 * 1024, ge=1, description="Largest file fetched (bytes).")
    file_roots: tuple[Path, ...] = Field(
        (), description="Folders file:// URLs may read from (comma-separated). Empty: none."
    )
    allow_private_addresses: bool = Field(
        False,
        description="Deprecated: every private and loopback address plus plain http; "
        "use PGQUEUE_ALLOW_HOSTS and PGQUEUE_ALLOW_HTTP.",
    )
    allow_hosts: tuple[str, ...] = Field(
        (),
        description="Private hosts links may reach: names, addresses or CIDRs, comma-separated. "
        "Metadata and link-local addresses stay refused.",
    )
    allow_http: bool = Field(False, description="Accept plain http:// links (https only otherwise).")
    s3_buckets: tuple[str, ...] = Field(
        (), description="Buckets s3:// links may name (comma-separated). Empty: any bucket."
    )
    s3_endpoint: str | None = Field(
        None, description="S3-compatible endpoint (Backblaze B2, MinIO). Unset: AWS."
    )
    s3_region: str | None = Field(None, description="S3 region.")
    fetch_timeout: float = Field(60.0, gt=0, description="Seconds a download may stall.")

    # --- extraction --------------------------------------------------------------------------
    pdf_max_pages: int = Field(
        100, ge=1,
        description="Pages of a PDF read at most; the rest are skipped with a warning.",
    )
    werk24_token: str | None = Field(None, description="Werk24 API token. Unset: werk24 jobs fail.")
    werk24_url: str | None = Field(None, description="Werk24 server URL (tests use a local one).")
    extractors: dict[str, str] = Field(
        default_factory=dict,
        description="Extra or replaced extractors, 'format=module:function,...'.",
    )

    # --- operations --------------------------------------------------------------------------
    log_format: Literal["auto", "json", "console"] = Field("auto", description="Log rendering.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus metrics port.")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None:
            database_url_problem(value)
        return value

    @field_validator("format_timeouts", mode="before")
    @classmethod
    def _parse_timeouts(cls, value: Any) -> Any:
        return _parse_mapping(value)

    @field_validator("extractors", mode="before")
    @classmethod
    def _parse_extractors(cls, value: Any) -> Any:
        return _parse_mapping(value)

    @field_validator("file_roots", mode="before")
    @classmethod
    def _parse_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Path(part.strip()) for part in value.split(",") if part.strip())
        return value

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: Any) -> Any:
        return tuple(_host_entry(entry) for entry in _comma_list(value))

    @field_validator("s3_buckets", mode="before")
    @classmethod
    def _parse_buckets(cls, value: Any) -> Any:
        return tuple(_comma_list(value))

    @model_validator(mode="after")
    def _liveness_is_consistent(self) -> Settings:
        if self.worker_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                f"worker_timeout ({self.worker_timeout:g} s) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval:g} s), or live workers look lost"
            )
        return self

    def timeout_for(self, fmt: str) -> float:
        return self.format_timeouts.get(fmt, self.job_timeout)


def _parse_mapping(value: Any) -> Any:
    """Turn 'a=1,b=2' into a dict; leave dicts alone."""
    if not isinstance(value, str):
        return value
    parsed: dict[str, str] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, item = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected 'key=value' pairs separated by commas, got {part!r}")
        parsed[key.strip()] = item.strip()
    return parsed


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _host_entry(entry: Any) -> Any:
    """A host name, an address or a CIDR, written as pgqueue compares it."""
    if not isinstance(entry, str):
        return entry
    try:
        return str(ipaddress.ip_network(entry.strip("[]"), strict=False))
    except ValueError:
        pass
    name = entry.lower().rstrip(".")
    if not _HOST_NAME.match(name):
        raise ValueError(f"expected host names, addresses or CIDRs, got {entry!r}")
    return name


def database_url_problem(url: str) -> None:
    """Raise ``ValueError`` when ``url`` is neither a postgresql:// URL nor key=value pairs."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except ProgrammingError:
        raise ValueError(
            "expected a URL such as postgresql://user:password@host:5432/database"
        ) from None


def env_name(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else ENV_PREFIX + field.upper()


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from the environment, then ``overrides`` (CLI flags) on top.

    Raises ``SettingsError`` with one line per bad value, naming where it came from.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in Settings.model_fields:
        variable = env_name(name)
        if variable in env and env[variable] != "":
            values[name] = env[variable]
            sources[name] = variable
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
            sources[name] = "--" + name.replace("_", "-")
    try:
        return Settings(**values)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"]:  # a rule across settings
                lines.append(message)
                continue
            field = str(error["loc"][0])
            where = sources.get(field, env_name(field))
            shown = "(hidden)" if field in SECRET_FIELDS else inert(repr(error.get("input")))
            lines.append(f"{where}: {message} (got {shown})")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None
