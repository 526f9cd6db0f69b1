"""The back office: staff sign-in and the staff home."""

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import current_user

from ...auth import mark_fresh, mark_two_step, safe_next, staff_required
from ...db import utcnow
from ...filters import datetimefmt
from ...forms.auth import ConfirmPasswordForm, SignInForm, TwoStepCodeForm
from ...models import StaffUser
from ...security import digest, seal, unseal
from ...services import alerts, jobs
from ...services import auth as auth_service
from ...services import two_step as two_step_service
from ...services.importer import staging
from ...services.ratelimit import guest_limit
from ...web import qr_svg, redirect_to, render
from ..auth import (
    GENERIC_FAILURE,
    held_data,
    hold_for_second_step,
    sign_in,
    sign_in_view,
    sign_out,
)

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.route("/login", methods=["GET", "POST"])
@guest_limit()
def login():
    """The back-office sign-in page; the password may lead to the two-step code."""
    if request.method == "GET" and current_user.is_authenticated and current_user.is_staff:
        return redirect(url_for("staff.index"))
    return sign_in_view(
        SignInForm(), "staff/login.html", True, url_for("staff.index"), check=_second_step
    )


# The sign-in between the password and the code: who, their auth stamp, since when, where
# to go next, and while setting up the authenticator its sealed new secret.
PENDING = "_two_step"
PENDING_SECONDS = 300


def _second_step(user, form):
    """After the right password: ask for the code (or set up the app) instead of signing in."""
    next_url = safe_next(request.args.get("next"), url_for("staff.index"))
    return hold_for_second_step(user, PENDING, next_url, ("staff.two_step", "staff.two_step_setup"))


def _pending():
    """The staff login half-way through signing in, with its pending data; (None, None)
    when there is none, it took more than five minutes, or the login changed meanwhile."""
    data = held_data(PENDING, PENDING_SECONDS)
    if data is None:
        return None, None
    user = StaffUser.get_or_none(StaffUser.id == data["uid"])
    if user is None or not user.is_active or digest(user.auth_stamp)[:16] != data["stamp"]:
        return None, None
    return user, data


def _start_again():
    had_pending = session.pop(PENDING, None) is not None
    if had_pending:
        flash("That sign-in took too long. Please sign in again.", "info")
    return redirect(url_for("staff.login"))


def _code_step(template: str, user, data, secret=None, **context):
    """GET/POST of a code form: the code signs the login in, or is refused with a reason."""
    form = TwoStepCodeForm()
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate():
            result = two_step_service.check_code(user, form.code.data, secret=secret)
            if result.ok:
                response = sign_in(user, data["next"])  # a fresh session ...
                mark_two_step()  # ... that passed the code
                return response
            if result.locked_until:
                status = 429
                form.code.errors = [
                    f"Too many wrong codes. Try again after {datetimefmt(result.locked_until)}."
                ]
            else:
                form.code.errors = [
                    "That code did not match. Type the code your app shows now "
                    "(each code works once)."
                ]
    return render(template, block="form", status=status, form=form, user=user, **context)


@bp.route("/login/code", methods=["GET", "POST"])
@guest_limit()
def two_step():
    """Second step of a staff sign-in: the code of the login's authenticator app."""
    user, data = _pending()
    if user is None:
        return _start_again()
    if not user.totp_secret:
        return redirect(url_for("staff.two_step_setup"))
    return _code_step("staff/two_step.html", user, data)


@bp.route("/login/setup", methods=["GET", "POST"])
@guest_limit()
def two_step_setup():
    """First sign-in under required two-step: scan the QR code, prove it with a code."""
    user, data = _pending()
    if user is None:
        return _start_again()
    if user.totp_secret:
        return redirect(url_for("staff.two_step"))
    secret = unseal(data.get("secret", ""))
    if not secret:
        secret = two_step_service.new_secret()
        session[PENDING] = {**data, "secret": seal(secret)}
    uri = two_step_service.provisioning_uri(secret, user.email)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return _code_step(
        "staff/two_step_setup.html", user, data, secret=secret, qr=qr_svg(uri), key=grouped
    )


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
    attention = alerts.waiting_counts()
    last = jobs.last_run()
    stale = current_app.config["WORKER_STALE_SECONDS"]
    worker = {
        "last_run": last,
        "ok": last is not None and (utcnow() - last).total_seconds() <= stale,
    }
    imports = staging.applying()
    return render("staff/index.html", attention=attention, worker=worker, imports=imports)
