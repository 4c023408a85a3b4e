"""The dashboard's routes: read pages, and the two actions (retry, cancel) behind CSRF checks.

Every page opens one short connection with a statement timeout, runs statements from
:mod:`pgqueue.sql`, and renders server-side. Retry and cancel go through
:mod:`pgqueue.control`, the same fenced statements the Python API and the CLI use, and each
leaves an audit event (``web_action``) in the log.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jinja2
import psycopg
import structlog
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pgqueue import control, sql
from pgqueue.database import connect_options, psycopg_url
from pgqueue.storage.urls import redact
from pgqueue.web import csrf, filters, results

log = structlog.get_logger("pgqueue.web")

# Most jobs an action "on every job matching" changes at once; the page says when more remain.
ACTION_LIMIT = 1000
_INERT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Config:
    database_url: str
    schema: str
    read_only: bool
    secret: bytes
    statement_timeout_ms: int
    refresh_seconds: int


def inert(value: Any) -> str:
    """Text with every control and bidi override shown as its escape, so it cannot act."""
    return _INERT.sub(lambda found: f"\\u{ord(found.group()):04x}", "" if value is None else str(value))


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("pgqueue.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters["inert"] = inert


def create_app(
    database_url: str,
    *,
    schema: str = "public",
    read_only: bool = False,
    secret: bytes | None = None,
    statement_timeout_ms: int = 5000,
    refresh_seconds: int = 10,
) -> Starlette:
    """The dashboard as an ASGI app. Mount it behind the host's own authentication.

    ``read_only`` hides and refuses retry and cancel. ``secret`` signs CSRF tokens (a random one
    per process by default, which is right unless several processes serve the same users).
    """
    connect_options(schema)  # refuses a bad schema name now, not at the first request
    config = Config(
        database_url,
        schema,
        read_only,
        secret or secrets.token_bytes(32),
        statement_timeout_ms,
        refresh_seconds,
    )
    handlers: list[tuple[str, Callable[[Request, Config], Awaitable[Response]], str]] = [
        ("/", overview, "GET"),
        ("/jobs", jobs, "GET"),
        ("/jobs/{job_id}", job, "GET"),
        ("/failures", failures, "GET"),
        ("/workers", workers, "GET"),
        ("/jobs/{job_id}/{action:str}", act_on_job, "POST"),
        ("/actions/{action:str}", act_on_matching, "POST"),
    ]
    routes = [Route(path, _bound(handler, config), methods=[method]) for path, handler, method in handlers]
    return Starlette(routes=routes)


def _bound(
    handler: Callable[[Request, Config], Awaitable[Response]], config: Config
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, config)
        except filters.BadRequest as error:
            return _page(request, config, "error.html", {"message": str(error)}, status=400)
        except psycopg.errors.QueryCanceled:
            message = (
                f"The query ran longer than {config.statement_timeout_ms / 1000:g} s and was "
                "stopped: narrow the filter (a status, a format or a record)."
            )
            return _page(request, config, "error.html", {"message": message}, status=400)
        except psycopg.OperationalError as error:
            message = f"The database does not answer: {str(error).strip().splitlines()[0]}"
            return _page(request, config, "error.html", {"message": message}, status=503)

    return endpoint


@asynccontextmanager
async def _connection(config: Config) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    options = connect_options(config.schema).get("options", "")
    options = f"{options} -c statement_timeout={config.statement_timeout_ms}".strip()
    connection = await psycopg.AsyncConnection.connect(
        psycopg_url(config.database_url),
        autocommit=True,
        row_factory=dict_row,
        prepare_threshold=None,
        options=options,
        connect_timeout=5,
    )
    async with connection:
        yield connection


async def _rows(
    connection: psycopg.AsyncConnection[dict[str, Any]], statement: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    async with connection.cursor() as cursor:
        await cursor.execute(statement.encode(), params or {})
        return await cursor.fetchall()


def _page(
    request: Request, config: Config, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    token = request.cookies.get(csrf.COOKIE)
    if token is None or not csrf.valid(config.secret, token, token):
        token = csrf.new_token(config.secret)
    base = request.scope.get("root_path", "")
    body = _templates.get_template(template).render(
        base=base,
        csrf_field=csrf.FIELD,
        csrf_token=token,
        read_only=config.read_only,
        refresh_seconds=config.refresh_seconds,
        notice=request.query_params.get("done"),
        **context,
    )
    response = HTMLResponse(body, status_code=status)
    response.set_cookie(
        csrf.COOKIE, token, path=base or "/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


# --- pages ------------------------------------------------------------------------------------


async def overview(request: Request, config: Config) -> Response:
    async with _connection(config) as connection:
        counts = {row["status"]: row["jobs"] for row in await _rows(connection, sql.WEB_STATUS_COUNTS)}
        by_format = await _rows(connection, sql.WEB_FORMATS_NOW)
        lag = (await _rows(connection, sql.REPORT_QUEUE_LAG))[0]
        throughput = (await _rows(connection, sql.REPORT_THROUGHPUT))[0]
        live = await _rows(connection, sql.REPORT_LIVE_WORKERS)
        recent_failures = await _rows(connection, sql.WEB_RECENT_FAILURES)
    formats: dict[str, dict[str, int]] = {}
    for row in by_format:
        formats.setdefault(row["format"], {})[row["status"]] = row["jobs"]
    context = {
        "counts": counts,
        "formats": formats,
        "lag": lag,
        "throughput": throughput,
        "workers": live,
        "recent_failures": recent_failures,
    }
    return _page(request, config, "overview.html", context)


async def jobs(request: Request, config: Config) -> Response:
    chosen = filters.job_filter(request.query_params)
    after = filters.cursor(request.query_params)
    params = {
        **chosen.params(),
        "after_at": after.created_at if after else None,
        "after_id": after.job_id if after else None,
        "limit": filters.PAGE_SIZE + 1,
    }
    async with _connection(config) as connection:
        rows = await _rows(connection, sql.WEB_JOB_PAGE, params)
    more = len(rows) > filters.PAGE_SIZE
    rows = rows[: filters.PAGE_SIZE]
    next_query = None
    if more:
        last = rows[-1]
        token = filters.Cursor(last["created_at"], last["id"]).token()
        next_query = urlencode({**chosen.query(), "after": token})
    context = {
        "rows": rows,
        "chosen": chosen,
        "next_query": next_query,
        "statuses": ["pending", "processing", "completed", "failed", "cancelled"],
        "first_page": after is None,
        "action_limit": ACTION_LIMIT,
    }
    return _page(request, config, "jobs.html", context)


async def job(request: Request, config: Config) -> Response:
    key = filters.job_id(request.path_params["job_id"])
    async with _connection(config) as connection:
        info = await control.get_job_async(connection, key)
    if info is None:
        return _page(request, config, "error.html", {"message": f"No job has the id {key}."}, status=404)
    context = {
        "job": info,
        "file_url": redact(info.file_url),
        "sections": results.sections(info.result),
        "raw": results.pretty(info.result),
    }
    return _page(request, config, "job.html", context)


async def failures(request: Request, config: Config) -> Response:
    async with _connection(config) as connection:
        reasons = await _rows(connection, sql.REPORT_FAILURE_REASONS, {"limit": 100})
    return _page(request, config, "failures.html", {"reasons": reasons})


async def workers(request: Request, config: Config) -> Response:
    async with _connection(config) as connection:
        live = await _rows(connection, sql.REPORT_LIVE_WORKERS)
    return _page(request, config, "workers.html", {"workers": live})


# --- actions ----------------------------------------------------------------------------------

_ACTIONS: dict[str, tuple[Callable[..., Awaitable[control.JobChange]], tuple[str, ...]]] = {
    "retry": (control.retry_async, ("failed", "cancelled")),
    "cancel": (control.cancel_async, ("pending", "processing")),
}


@dataclass(frozen=True)
class _Action:
    name: str
    form: dict[str, str]
    change: Callable[..., Awaitable[control.JobChange]]
    statuses: tuple[str, ...]


async def _checked_action(request: Request, config: Config) -> _Action | Response:
    """The action asked for, or the refusal when the app is read-only or the CSRF check fails."""
    if config.read_only:
        return _page(request, config, "error.html", {"message": "This dashboard is read-only."}, status=403)
    form = {key: str(value) for key, value in (await request.form()).items()}
    if not csrf.valid(config.secret, request.cookies.get(csrf.COOKIE), form.get(csrf.FIELD)):
        message = "The form's security token is missing or stale: reload the page and try again."
        return _page(request, config, "error.html", {"message": message}, status=403)
    name = request.path_params["action"]
    if name not in _ACTIONS:
        raise filters.BadRequest(f"unknown action {name[:32]!r}: retry or cancel")
    change, statuses = _ACTIONS[name]
    return _Action(name, form, change, statuses)


def _who(request: Request) -> str | None:
    user = request.scope.get("user")
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    return str(name) if name else request.scope.get("pgqueue_user")


async def act_on_job(request: Request, config: Config) -> Response:
    action = await _checked_action(request, config)
    if isinstance(action, Response):
        return action
    key = filters.job_id(request.path_params["job_id"])
    async with _connection(config) as connection:
        change = await action.change(connection, key)
    log.info(
        "web_action", action=action.name, job_id=key, changed=change.changed, status=change.status,
        user=_who(request),
    )
    done = f"{action.name} done" if change.changed else f"{action.name} changed nothing: the job is {change.status}"
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/jobs/{key}?{urlencode({'done': done})}", status_code=303)


async def act_on_matching(request: Request, config: Config) -> Response:
    action = await _checked_action(request, config)
    if isinstance(action, Response):
        return action
    chosen = filters.job_filter(action.form)
    params = {**chosen.params(), "statuses": list(action.statuses), "limit": ACTION_LIMIT}
    changed = 0
    async with _connection(config) as connection:
        ids = [row["id"] for row in await _rows(connection, sql.WEB_JOB_IDS_MATCHING, params)]
        for key in ids:
            changed += (await action.change(connection, key)).changed
    log.info(
        "web_action", action=f"{action.name}_matching", matched=len(ids), changed=changed,
        filter=chosen.query(), user=_who(request),
    )
    done = f"{action.name}: {changed} of {len(ids)} matching jobs changed"
    if len(ids) == ACTION_LIMIT:
        done += f" (at most {ACTION_LIMIT} at a time: run it again for the rest)"
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/jobs?{urlencode({**chosen.query(), 'done': done})}", status_code=303)
