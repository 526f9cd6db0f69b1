"""Error pages: one generic page (or fragment) per status, with a reference id for support."""

import logging

from flask import flash, make_response, request
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException, InternalServerError

from .request_ids import request_id
from .services.health import database_unavailable
from .web import render, wants_fragment

log = logging.getLogger(__name__)

TITLES = {
    400: "That request could not be read",
    403: "You do not have access to this page",
    404: "Page not found",
    405: "That action is not allowed here",
    413: "That upload is too large",
    422: "Please check what you entered",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "The portal is briefly unavailable",
}

# Seconds a browser or client is asked to wait when the database cannot be reached.
RETRY_AFTER = 10

# Served when the error page itself cannot be rendered (the database is down, say).
BARE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main><h1>{title}</h1><p>Please try again in a moment.</p>{reference}</main></body></html>
"""


def _bare_page(status: int, reference: str = ""):
    title = TITLES.get(status, "Error")
    ref = f"<p>Reference: <code>{escape(reference)}</code></p>" if reference else ""
    response = make_response(BARE_PAGE.format(title=escape(title), reference=ref), status)
    response.vary.add("HX-Request")
    return response


def _render_error(status: int, message: str = "", reference: str = ""):
    title = TITLES.get(status, "Error")
    try:
        return render(
            "errors/error.html",
            block="content",
            status=status,
            title=title,
            message=message,
            status_code=status,
            reference=reference,
        )
    except Exception:
        log.exception("the error page for %s could not be rendered", status)
        return _bare_page(status, reference)


def _escaped(value) -> str:
    """Text from the URL, safe for one log line: a line break in it cannot forge another."""
    return str(value).encode("unicode_escape").decode("ascii")


def log_denied(status: int) -> None:
    """Checklist E7: one structured line per refused request of a signed-in user: who, which
    route and object (the URL arguments), when (the log record's time). A 404 counts when
    the URL matched a route: the object is missing or not theirs, and the two are answered
    alike on purpose (E2), so both are logged."""
    if status not in (403, 404) or request.url_rule is None:
        return
    try:
        if not current_user.is_authenticated:
            return
        kind = "staff" if current_user.is_staff else "portal"
        who = current_user.id
    except Exception:  # the session could not be read; nothing to attribute
        return
    log.warning(
        "access denied: %s user %s got %s for %s %s (%s %s) request=%s",
        kind,
        who,
        status,
        request.endpoint,
        " ".join(f"{k}={_escaped(v)}" for k, v in sorted((request.view_args or {}).items())) or "-",
        request.method,
        _escaped(request.path),
        request_id(),
    )


def handle_http(error: HTTPException):
    """4xx and other HTTP errors: the generic page, or the message given to `abort`."""
    log_denied(error.code or 500)
    # abort(403, "text") passes a message meant for the person; default texts stay generic.
    description = error.description if error.description != type(error).description else ""
    if isinstance(error, RateLimitExceeded):
        description = ""  # "30 per 1 minute" is the limiter's wording, not ours
    response = _render_error(error.code or 500, description)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_csrf(error: CSRFError):
    """A missing or stale CSRF token: a 400 page that says what to do. An htmx request would
    fail silently (errors are not swapped in), so it reloads the page instead, with a
    notice saying why (checklist F4)."""
    message = "Your form expired or was sent from another page. Reload the page and try again."
    if request.headers.get("HX-Request"):
        response = _render_error(400, message)
        # Flashed after rendering, so the reloaded page shows it (not this unseen answer).
        flash("The page had been open a long time, so it was reloaded. Please try again.", "info")
        response.headers["HX-Refresh"] = "true"
        return response
    return _render_error(400, message)


def handle_unexpected(error: Exception):
    """Anything unhandled: a generic 500 with a reference id; the details go to the log only."""
    reference = request_id()  # the X-Request-Id header and the log lines carry it too
    log.exception("unhandled error, reference %s", reference)
    return _render_error(500, "", reference)


def handle_database(error: Exception):
    """The database cannot be reached (down, restarting, a lock or statement timeout): 503
    with Retry-After, so proxies and clients try again, instead of a bare 500. Any other
    database error is a bug and gets the ordinary 500."""
    if not database_unavailable(error):
        return handle_unexpected(error)
    log.error("database unavailable, reference %s: %s", request_id(), error)
    return _unavailable()


def handle_pool_exhausted(error: MaxConnectionsExceeded):
    """Every pooled connection stayed busy past the pool's wait: the database is not
    answering fast enough, which is a 503 like a lock timeout, not a bug."""
    log.error("database unavailable, reference %s: %s", request_id(), error)
    return _unavailable()


def _unavailable():
    """503 + Retry-After. The page template reads the settings from the database, which is
    what failed: the bare page it is, or for a targeted htmx request a notice alone (htmx
    swaps no error answer; the page's script shows a notice instead, STYLE 9)."""
    if wants_fragment():
        notice = (
            '<div class="flash flash-error" role="alert">'
            f"{escape(TITLES[503])}. Please try again in a few seconds.</div>"
        )
        response = make_response(notice, 503)
        response.vary.add("HX-Request")
    else:
        response = _bare_page(503, request_id())
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def init_app(app) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(OperationalError, handle_database)
    app.register_error_handler(InterfaceError, handle_database)
    app.register_error_handler(MaxConnectionsExceeded, handle_pool_exhausted)
    app.register_error_handler(Exception, handle_unexpected)
