"""Customer sign-in and sign-out."""

from flask import Blueprint, flash, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..auth import safe_next
from ..filters import datetimefmt
from ..forms import ActionForm
from ..forms.auth import SignInForm
from ..services import auth as auth_service
from ..services.ratelimit import guest_limit
from ..web import redirect_to, render

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "That email and password do not match an active login."


def sign_in(user, default: str):
    """Rotate the session, start a server-side session row and log the user in."""
    next_url = safe_next(request.args.get("next"), default)
    if current_user.is_authenticated:
        # Switching logins in one browser: the old session must not stay live server-side.
        auth_service.end_session(current_user.session_key)
    session.clear()  # a fresh session at sign-in: no fixation (checklist D3)
    auth_service.start_session(user)
    login_user(user)
    # A targeted htmx post gets HX-Redirect: a whole page must not land inside the form.
    return redirect_to(next_url)


def sign_in_view(form, template: str, staff: bool, default: str):
    """Shared GET/POST handling of the customer and staff sign-in pages."""
    if request.method == "POST" and form.validate():
        result = auth_service.authenticate(form.email.data, form.password.data, staff=staff)
        if result.user is not None:
            return sign_in(result.user, default)
        if result.locked_until:
            form.form_errors.append(
                "Too many attempts. Try again after " + datetimefmt(result.locked_until) + "."
            )
            return render(template, block="form", status=429, form=form)
        form.form_errors.append(GENERIC_FAILURE)
    status = 422 if request.method == "POST" else 200
    return render(template, block="form", status=status, form=form)


@bp.route("/login", methods=["GET", "POST"])
@guest_limit()
def login():
    """The customer sign-in page."""
    # A POST still signs in: switching logins in one browser ends the first session.
    if request.method == "GET" and current_user.is_authenticated and not current_user.is_staff:
        return redirect(url_for("home.index"))
    return sign_in_view(SignInForm(), "auth/login.html", False, url_for("home.index"))


def sign_out(login_endpoint: str):
    """Revoke the server-side session (not just drop the cookie) and go to a sign-in page."""
    if ActionForm().validate_on_submit() and current_user.is_authenticated:
        auth_service.end_session(current_user.session_key)
        logout_user()
        session.clear()
        flash("You are signed out.", "success")
    return redirect_to(url_for(login_endpoint))


@bp.post("/logout")
def logout():
    """Customer sign-out."""
    return sign_out("auth.login")
