"""Error pages: one generic page (or fragment) per status, with a reference id for support."""

import logging
import secrets

from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from .web import render

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
}


def _render_error(status: int, message: str = "", reference: str = ""):
    return render(
        "errors/error.html",
        block="content",
        status=status,
        title=TITLES.get(status, "Error"),
        message=message,
        status_code=status,
        reference=reference,
    )


def handle_http(error: HTTPException):
    # abort(403, "text") passes a message meant for the person; default texts stay generic.
    description = error.description if error.description != type(error).description else ""
    response = _render_error(error.code or 500, description)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_csrf(error: CSRFError):
    return _render_error(
        400, "Your form expired or was sent from another page. Reload the page and try again."
    )


def handle_unexpected(error: Exception):
    reference = secrets.token_hex(4)
    log.exception("unhandled error, reference %s", reference)
    return _render_error(500, "", reference)


def init_app(app) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(Exception, handle_unexpected)
