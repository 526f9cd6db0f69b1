"""The back office: staff sign-in and the staff home."""

from flask import Blueprint, redirect, request, url_for
from flask_login import current_user

from ...auth import staff_required
from ...forms.auth import SignInForm
from ...models import AccessRequest, Case, OutboxMessage, Payment, PortalUser
from ...services.ratelimit import guest_limit
from ...web import render
from ..auth import sign_in_view, sign_out

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.route("/login", methods=["GET", "POST"])
@guest_limit()
def login():
    """The back-office sign-in page."""
    if request.method == "GET" and current_user.is_authenticated and current_user.is_staff:
        return redirect(url_for("staff.index"))
    return sign_in_view(SignInForm(), "staff/login.html", True, url_for("staff.index"))


@bp.post("/logout")
def logout():
    """Staff sign-out."""
    return sign_out("staff.login")


@bp.get("/")
@staff_required()
def index():
    """The staff home: what needs attention."""
    attention = {
        "pending_offline": Payment.select().where(Payment.status == "pending").count(),
        "flagged": Payment.select().where(Payment.flagged).count(),
        "open_cases": Case.select().where(Case.status.in_(("new", "open"))).count(),
        "access_requests": AccessRequest.select().where(AccessRequest.status == "pending").count(),
        "pending_users": PortalUser.select().where(PortalUser.status == "pending").count(),
        "failed_mail": OutboxMessage.select().where(OutboxMessage.status == "failed").count(),
    }
    return render("staff/index.html", attention=attention)
