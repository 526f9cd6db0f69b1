"""The request's correlation id, shared by the response header, the log lines and error pages.

Its own module, below both `web` and the services, so the audit log can name the request
without importing the web layer (which imports the services).
"""

import secrets

from flask import g, has_request_context


def request_id() -> str:
    """This request's correlation id: in the `X-Request-Id` header, every audit log line,
    the access-denied lines and the reference shown on a 500 page (checklist K2)."""
    if not has_request_context():
        return "-"
    if "request_id" not in g:
        g.request_id = secrets.token_hex(6)
    return g.request_id
