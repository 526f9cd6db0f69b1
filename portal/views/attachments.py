"""Attachment files: served to whoever may see what they are attached to, else 404.

Customers: `/attachments/<key>` (and `/thumb`); the owner's capability decides who sees it
(a case message: a login that may open the case). Another company's login, or a
site-limited login outside the case's site, gets 404, like a key that does not exist; a
guest is sent to sign in and a staff session gets 403, as on every customer route (the
authorization matrix), whatever the key. Staff: `/staff/attachments/<key>`, any
attachment. Every answer is `nosniff`, sandboxed, and names the file in
`Content-Disposition` (inline only for images; everything else downloads).
"""

from flask import Blueprint, abort, make_response
from flask_login import current_user

from ..auth import customer_required
from ..services import attachments
from .staff._common import guard

bp = Blueprint("attachments", __name__, url_prefix="/attachments")
staff_bp = Blueprint("staff_attachments", __name__, url_prefix="/staff/attachments")
guard(staff_bp)


def _send(row, thumb: bool):
    found = attachments.content(row, thumb=thumb)
    if found is None:
        abort(404)
    data, content_type = found
    response = make_response(data)
    response.headers["Content-Type"] = content_type
    response.headers["X-Content-Type-Options"] = "nosniff"
    # A file is never a page: no script, no plugin, no form, even if a browser renders it.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=300"
    inline = thumb or content_type.startswith("image/")
    name = row.filename if not thumb else f"thumbnail-{row.filename}.png"
    response.headers.set("Content-Disposition", "inline" if inline else "attachment", filename=name)
    return response


def _customer_row(key):
    row = attachments.for_customer(current_user, key)
    if row is None:
        abort(404)
    return row


@bp.get("/<key>")
@customer_required()
def show(key):
    """The file, if the signed-in customer may see what it is attached to."""
    return _send(_customer_row(key), thumb=False)


@bp.get("/<key>/thumb")
@customer_required()
def thumb(key):
    """An image's thumbnail, under the same rule."""
    return _send(_customer_row(key), thumb=True)


def _staff_row(key):
    row = attachments.by_key(key)
    if row is None:
        abort(404)
    return row


@staff_bp.get("/<key>")
def show_staff(key):
    """The file, for the back office."""
    return _send(_staff_row(key), thumb=False)


@staff_bp.get("/<key>/thumb")
def thumb_staff(key):
    """An image's thumbnail, for the back office."""
    return _send(_staff_row(key), thumb=True)
