"""Request access: someone without an invoice asks for a login; staff decide."""

from flask import Blueprint, abort, request, url_for

from ..forms.access import RequestAccessForm
from ..services import access, settings
from ..services.ratelimit import guest_limit
from ..web import redirect_to, render

bp = Blueprint("access", __name__, url_prefix="/request-access")


@bp.before_request
def _enabled():
    if not settings.get("request_access"):
        abort(404)


@bp.route("/", methods=["GET", "POST"])
@guest_limit()
def new():
    """The request form; the request goes to the staff queue."""
    form = RequestAccessForm()
    if request.method == "POST" and form.validate():
        access.request_access(form.data)
        return redirect_to(url_for("access.sent"))
    status = 422 if request.method == "POST" else 200
    return render("access/new.html", block="form", status=status, form=form)


@bp.get("/sent")
def sent():
    """The answer to a request for access."""
    return render("access/sent.html")
