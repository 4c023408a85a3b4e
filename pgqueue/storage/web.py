"""``https://`` links (and ``http://`` for local test servers), streamed with httpx.

Each hop (the link and every redirect, at most five) is resolved once and checked by the
address policy; the request then goes to one of the checked addresses, with the link's host
name in the ``Host`` header and in TLS (SNI and certificate check), so DNS cannot answer one
address to the check and another to the connection. Environment proxies are ignored for the
same reason: a proxy would connect wherever it likes.
"""

from __future__ import annotations

import functools
import re
import ssl
from typing import BinaryIO

import httpx

from pgqueue.errors import (
    AccessDenied,
    FileNotFound,
    InvalidFileUrl,
    JobError,
    StorageUnavailable,
)
from pgqueue.settings import Settings
from pgqueue.storage.addresses import (
    AddressPolicy,
    IPAddress,
    Resolver,
    allowed_addresses,
    parse_host_literal,
    resolve_system,
)
from pgqueue.storage.spool import check_announced_size, copy_limited
from pgqueue.storage.urls import redact

MAX_REDIRECTS = 5
CHUNK_SIZE = 1024 * 1024
USER_AGENT = "pgqueue-fetch/1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_HTTP_SETTING = "PGQUEUE_ALLOW_HTTP"
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")


def download_web(
    url: str,
    settings: Settings,
    destination: BinaryIO,
    *,
    policy: AddressPolicy | None = None,
    resolve: Resolver = resolve_system,
    verify: ssl.SSLContext | None = None,
) -> None:
    """Stream ``url`` into ``destination``, following up to five checked redirects.

    ``policy``, ``resolve`` and ``verify`` default to what settings and the system say; tests
    pass their own to reach loopback servers under a strict policy.
    """
    policy = policy or AddressPolicy.from_settings(settings)
    context = verify or _default_tls_context()
    original = redact(url)
    current = _checked_url(url, policy, original)
    shown = original
    for _hop in range(MAX_REDIRECTS + 1):
        location = _fetch_hop(current, settings, destination, policy, resolve, context, shown)
        if location is None:
            return
        target = _redirect_target(current, location, original)
        shown = f"{original} (redirected to {redact(target)})"
        current = _checked_url(target, policy, shown)
    raise InvalidFileUrl(f"{original}: more than {MAX_REDIRECTS} redirects")


def _redirect_target(current: httpx.URL, location: str, original: str) -> str:
    """The absolute URL a redirect leads to; one that can never be fetched is permanent."""
    scheme = _SCHEME.match(location)
    if scheme is not None and scheme.group(1).lower() not in ("http", "https"):
        # data:, file:, javascript: and friends: no retry can make them a download.
        raise InvalidFileUrl(
            f"{original}: redirected to a {scheme.group(1).lower()}: URL; links may only lead "
            "to https://"
        )
    try:
        return str(current.join(location))
    except httpx.InvalidURL as exc:
        raise InvalidFileUrl(f"{original}: redirected to an invalid URL ({exc})") from None


def _checked_url(url: str, policy: AddressPolicy, shown: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidFileUrl(f"{shown}: not a valid URL ({exc})") from None
    if parsed.scheme == "http" and not policy.allow_http:
        raise InvalidFileUrl(
            f"{shown}: https is required; plain http:// is accepted only with "
            f"{_HTTP_SETTING} on"
        )
    if parsed.scheme not in ("http", "https"):
        raise InvalidFileUrl(f"{shown}: links may only lead to https:// (got {parsed.scheme}:)")
    if not parsed.raw_host:
        raise InvalidFileUrl(f"{shown}: the URL has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidFileUrl(f"{shown}: port {parsed.port} is out of range")
    return parsed


def _fetch_hop(
    url: httpx.URL,
    settings: Settings,
    destination: BinaryIO,
    policy: AddressPolicy,
    resolve: Resolver,
    context: ssl.SSLContext,
    shown: str,
) -> str | None:
    """Fetch one hop; return the redirect target, or ``None`` once the file is written."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = allowed_addresses(host, port, policy, resolve)
    except JobError as exc:
        raise type(exc)(f"{shown}: {exc}") from None
    failures: list[str] = []
    for address in addresses:
        try:
            return _request(url, address, settings, destination, context, shown)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was received yet, so another checked address may be tried.
            failures.append(f"{address}: {_describe(exc)}")
    raise StorageUnavailable(f"{shown}: could not connect ({'; '.join(failures)})")


def _request(
    url: httpx.URL,
    address: IPAddress,
    settings: Settings,
    destination: BinaryIO,
    context: ssl.SSLContext,
    shown: str,
) -> str | None:
    host = url.raw_host.decode("ascii")
    extensions: dict[str, str] = {}
    if url.scheme == "https" and parse_host_literal(host) is None:
        extensions["sni_hostname"] = host
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Accept-Encoding": "identity",
        "User-Agent": USER_AGENT,
    }
    timeout = httpx.Timeout(settings.fetch_timeout)
    # One client per hop: a pooled connection verified for one host name must not be reused
    # for another name that happens to share its address.
    with httpx.Client(verify=context, timeout=timeout, trust_env=False) as client:
        try:
            with client.stream(
                "GET", url.copy_with(host=str(address)), headers=headers, extensions=extensions
            ) as response:
                return _receive(response, settings, destination, shown)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise
        except httpx.InvalidURL as exc:
            # httpx builds the next request of a redirect itself, and fails on a Location
            # such as data: or javascript:, which no retry can ever fetch.
            raise InvalidFileUrl(
                f"{shown}: redirected to a URL that cannot be fetched ({exc}); links may only "
                "lead to https://"
            ) from None
        except httpx.TimeoutException as exc:
            raise StorageUnavailable(
                f"{shown}: the server sent nothing for {settings.fetch_timeout:g} s "
                f"({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"{shown}: the download failed ({_describe(exc)})") from None


def _receive(
    response: httpx.Response, settings: Settings, destination: BinaryIO, shown: str
) -> str | None:
    status = response.status_code
    if status in _REDIRECTS:
        location = response.headers.get("Location")
        if not location:
            raise StorageUnavailable(f"{shown}: HTTP {status} redirect without a Location")
        return location
    if 200 <= status < 300:
        check_announced_size(_content_length(response), settings.max_file_size, shown)
        copy_limited(response.iter_bytes(CHUNK_SIZE), destination, settings.max_file_size, shown)
        return None
    what = f"HTTP {status} {response.reason_phrase}".strip()
    if status in (404, 410):
        raise FileNotFound(f"{shown}: not found ({what})")
    if status in (401, 403):
        raise AccessDenied(f"{shown}: the server refused access ({what})")
    if status >= 500 or status in _TRANSIENT_STATUSES:
        raise StorageUnavailable(f"{shown}: the server is unavailable ({what})")
    raise InvalidFileUrl(f"{shown}: the server answered {what}")


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _describe(exc: Exception) -> str:
    detail = str(exc) or repr(exc.__cause__ or exc.__context__ or "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle for every download costs more than the request.
    return httpx.create_ssl_context()
