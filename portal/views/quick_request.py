"""Request service without signing in (setting "Quick requests"): a case for the office."""

from flask import Blueprint, abort, request, url_for

from ..forms.quick_request import QuickRequestForm
from ..services import quick_request, settings
from ..services.ratelimit import guest_limit
from ..web import redirect_to, render

bp = Blueprint("quick_request", __name__, url_prefix="/request-service")


@bp.before_request
def _enabled():
    if not (settings.get("quick_requests") and settings.get("module_cases")):
        abort(404)


@bp.route("/", methods=["GET", "POST"])
@guest_limit()
def new():
    """The form; a right or wrong identification ends on the same page (A1)."""
    form = QuickRequestForm()
    if request.method == "POST" and form.validate():
        quick_request.submit(form.data, files=form.photo.prepared)
        return redirect_to(url_for("quick_request.sent"))
    status = 422 if request.method == "POST" else 200
    return render("quick_request/new.html", block="form", status=status, form=form)


@bp.get("/sent")
def sent():
    """The one answer to every request."""
    return render("quick_request/sent.html")
