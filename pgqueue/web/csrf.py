"""Cross-site request forgery: a double-submit token bound to a secret.

A page sets a random token in a cookie and repeats it in every form. A POST is accepted only
when the form's token equals the cookie's and carries the app's signature: another site can
make a browser send the cookie, but cannot read it to copy it into the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "pgqueue_csrf"
FIELD = "csrf_token"


def new_token(secret: bytes) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_sign(secret, nonce)}"


def valid(secret: bytes, cookie: str | None, submitted: str | None) -> bool:
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        return False
    nonce, _, signature = cookie.partition(".")
    return hmac.compare_digest(signature, _sign(secret, nonce))


def _sign(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]
