"""The checks every ``file_url`` passes before any scheme looks at it, and how URLs are shown.

A URL lands in error messages, and so in the job row and in logs: ``redact`` keeps what helps a
person find the file and drops what could be a secret (user info, query-string signatures), and
``conceal`` takes those secrets out of any text that may quote them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

from pgqueue.errors import InvalidFileUrl

MAX_URL_LENGTH = 2048
SCHEMES = ("s3", "https", "http", "file")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
# Query parameters of presigned URLs (AWS SigV2/V4, GCS, Azure SAS) and of bearer links.
_PRESIGNED = re.compile(
    r"[?&](x-amz-[a-z-]+|awsaccesskeyid|signature|x-goog-[a-z-]+|sig|sv|se|token|access_token)=",
    re.IGNORECASE,
)
_MASK = "[redacted]"
_SHORTEST_SECRET = 4  # shorter pieces would mask ordinary words of the message


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
    if scheme == "s3" and "@" in url[match.end() :].lstrip("/").partition("/")[0]:
        raise InvalidFileUrl(
            f"s3:// links must not carry credentials ({redact(url)!r}); the worker signs "
            "with its own (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        )
    return scheme


def redact(url: str) -> str:
    """The URL as it may be shown or stored anywhere but ``file_url``: no secrets in it.

    http and https lose user info, query string and fragment. s3 loses user info and a
    presigned query (``?X-Amz-Signature=...``); other ``?`` and ``#`` stay, because they are
    part of raw keys. file:// paths are shown whole: they carry no credentials.
    """
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if match is None or scheme not in ("http", "https", "s3"):
        return url
    rest = url[match.end() :]
    if scheme == "s3":
        presigned = _PRESIGNED.search(rest)
        if presigned is not None:
            rest = rest[: rest.rfind("?", 0, presigned.start() + 1)]
    else:
        rest = rest.split("#", 1)[0].split("?", 1)[0]
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        authority = authority.rpartition("@")[2]
        rest = "//" + authority + slash + path
    return match.group(1) + ":" + rest


def conceal(text: str, url: str) -> str:
    """``text`` (an error message, a library's exception) without any secret ``url`` carries.

    The URL itself becomes its redacted form; then every secret part (user, password, each
    query value, the fragment), raw or percent-decoded, is masked wherever else it appears,
    since libraries quote pieces of URLs in their own words.
    """
    shown = redact(url)
    if shown == url:
        return text
    text = text.replace(url, shown)
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def _secrets(url: str) -> set[str]:
    """The parts of ``url`` that ``redact`` drops, long enough to be masked safely."""
    rest = url.partition(":")[2]
    parts: set[str] = set()
    authority = rest[2:].partition("/")[0] if rest.startswith("//") else ""
    if "@" in authority:
        user_info = authority.rpartition("@")[0]
        parts.update((user_info, *user_info.split(":", 1)))
    after_authority = rest[2 + len(authority) :] if rest.startswith("//") else rest
    marks = [index for index in (after_authority.find("?"), after_authority.find("#")) if index >= 0]
    dropped = after_authority[min(marks) :] if marks else ""
    for piece in re.split(r"[?&#;]", dropped):
        name, _equals, value = piece.partition("=")
        parts.update((piece, value or name))
    found = set(parts)
    for part in parts:
        found.add(unquote(part))
        found.add(unquote_plus(part))
    return {part for part in found if len(part) >= _SHORTEST_SECRET}


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
