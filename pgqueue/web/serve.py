"""``pgqueue web``: the dashboard served on its own.

It binds to loopback by default. Binding anywhere else needs a token, which the browser sends
as the password of HTTP basic authentication (any user name), so a dashboard that can retry and
cancel jobs is never open to the network by mistake. Behind the host's own authentication,
mount :func:`pgqueue.web.create_app` instead.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class WebSettingsError(ValueError):
    """A setting of ``pgqueue web`` that cannot be used; the message says which and why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenRequired:
    """HTTP basic authentication whose password must be the token; the user name is recorded."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = self._user(dict(scope["headers"]).get(b"authorization", b""))
        if user is None:
            await send({
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", b'Basic realm="pgqueue", charset="UTF-8"'),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            })
            await send({"type": "http.response.body", "body": b"the pgqueue dashboard needs its token\n"})
            return
        await self.app({**scope, "pgqueue_user": user}, receive, send)

    def _user(self, header: bytes) -> str | None:
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(password, self.token):
            return None
        return user.decode("utf-8", "replace") or "token"


def build(database_url: str, *, host: str, token: str | None, read_only: bool, schema: str) -> Any:
    """The app ``pgqueue web`` serves, or the refusal of an unsafe binding."""
    from pgqueue.web.app import create_app

    if not is_loopback(host) and not token:
        raise WebSettingsError(
            f"refusing to serve the dashboard on {host} without a token: set PGQUEUE_WEB_TOKEN "
            "(or --token), or bind to 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise WebSettingsError("the dashboard token is shorter than 16 characters")
    app: Any = create_app(database_url, schema=schema, read_only=read_only)
    return TokenRequired(app, token) if token else app


def serve(
    database_url: str, *, host: str, port: int, token: str | None, read_only: bool, schema: str
) -> None:
    import uvicorn

    app = build(database_url, host=host, token=token, read_only=read_only, schema=schema)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
