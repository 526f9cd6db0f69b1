"""The back office: staff sign-in and the staff home."""

from flask import Blueprint, redirect, request, url_for
from flask_login import current_user

from ...auth import mark_fresh, safe_next, staff_required
from ...filters import datetimefmt
from ...forms.auth import ConfirmPasswordForm, SignInForm
from ...models import AccessRequest, Case, OutboxMessage, Payment, PortalUser
from ...services import auth as auth_service
from ...services.ratelimit import guest_limit
from ...web import redirect_to, render
from ..auth import GENERIC_FAILURE, sign_in_view, sign_out

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


@bp.route("/confirm", methods=["GET", "POST"])
@staff_required()
@guest_limit()
def confirm():
    """Type the password again before a sensitive change; then back to where it was."""
    form = ConfirmPasswordForm()
    next_url = safe_next(request.args.get("next"), url_for("staff.index"))
    if request.method == "POST" and form.validate():
        result = auth_service.authenticate(current_user.email, form.password.data, staff=True)
        if result.user is not None and result.user.id == current_user.id:
            mark_fresh()
            return redirect_to(next_url)
        if result.locked_until:
            message = f"Too many attempts. Try again after {datetimefmt(result.locked_until)}."
        else:
            message = GENERIC_FAILURE
        form.password.errors = [message]
    status = 422 if request.method == "POST" else 200
    return render("staff/confirm.html", block="form", status=status, form=form, next_url=next_url)


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
