"""The operators' web dashboard: an ASGI app that a host mounts behind its own authentication.

    app.mount("/admin/jobs", pgqueue.web.create_app(database_url))

``pgqueue web`` serves it alone, on loopback unless a token is given (see :mod:`.serve`).
"""

from __future__ import annotations

from pgqueue.web.app import create_app

__all__ = ["create_app"]
