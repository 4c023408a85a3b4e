"""The checks every ``file_url`` passes before any scheme looks at it, and how URLs are shown.

A URL lands in error messages, and so in the job row and in logs: ``redact`` keeps what helps a
person find the file and drops what could be a secret (user info, query-string signatures).
"""

from __future__ import annotations

import re

from pgqueue.errors import InvalidFileUrl

MAX_URL_LENGTH = 2048
SCHEMES = ("s3", "https", "http", "file")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def scheme_of(url: object) -> str:
    """Return the lower-case scheme of a URL we may fetch, or raise ``InvalidFileUrl``."""
    if not isinstance(url, str) or not url:
        raise InvalidFileUrl("the file URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidFileUrl(
            f"the file URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are accepted"
        )
    if _CONTROL.search(url):
        raise InvalidFileUrl(f"the file URL contains control characters: {redact(url)!r}")
    match = _SCHEME.match(url)
    if match is None:
        raise InvalidFileUrl(
            f"the file URL has no scheme: {redact(url)!r}; expected one of s3://, https://, file://"
        )
    scheme = match.group(1).lower()
    if scheme not in SCHEMES:
        raise InvalidFileUrl(
            f"unsupported URL scheme {scheme!r} in {redact(url)!r}; "
            "expected one of s3://, https://, file://"
        )
    return scheme


def redact(url: str) -> str:
    """The URL without user info, query string and fragment (for http and https only).

    s3:// keys and file:// paths are shown whole: they are raw names that may legitimately
    contain ``?`` or ``@``, and neither scheme carries credentials in the URL.
    """
    match = _SCHEME.match(url)
    if match is None or match.group(1).lower() not in ("http", "https"):
        return url
    rest = url[match.end() :]
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        authority = authority.rpartition("@")[2]
        rest = "//" + authority + slash + path
    return match.group(1) + ":" + rest


def file_suffix(name: str) -> str:
    """The file extension of a path or key, if it looks like one, for naming the temp file.

    Some extractors and the libraries under them look at the extension; anything unusual is
    dropped rather than put into a local file name.
    """
    last = name.rstrip("/").rpartition("/")[2]
    dot = last.rfind(".")
    if dot <= 0:
        return ""
    suffix = last[dot:]
    return suffix.lower() if _SUFFIX.match(suffix) else ""
