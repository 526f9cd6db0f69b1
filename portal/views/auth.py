"""Customer sign-in and sign-out."""

from flask import Blueprint, flash, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..auth import mark_fresh, safe_next
from ..filters import datetimefmt
from ..forms import ActionForm
from ..forms.auth import CustomerSignInForm
from ..services import access as access_service
from ..services import auth as auth_service
from ..services.ratelimit import guest_limit
from ..web import redirect_to, render

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "That email and password do not match an active login."
TERMS_NEEDED = "Tick the box to accept the terms of use before you sign in."


def sign_in(user, default: str):
    """Rotate the session, start a server-side session row and log the user in."""
    next_url = safe_next(request.args.get("next"), default)
    if current_user.is_authenticated:
        # Switching logins in one browser: the old session must not stay live server-side.
        auth_service.end_session(current_user.session_key)
    session.clear()  # a fresh session at sign-in: no fixation (checklist D3)
    auth_service.start_session(user)
    login_user(user)
    mark_fresh()
    # A targeted htmx post gets HX-Redirect: a whole page must not land inside the form.
    return redirect_to(next_url)


def sign_in_view(form, template: str, staff: bool, default: str, check=None, **context):
    """Shared GET/POST handling of the customer and staff sign-in pages.

    `check(user, form)` runs after the password matched and may answer instead of signing
    in (the customer terms box); `context` goes to the template.
    """
    if request.method == "POST" and form.validate():
        result = auth_service.authenticate(form.email.data, form.password.data, staff=staff)
        if result.user is not None:
            answer = check(result.user, form) if check else None
            if answer is not None:
                return answer
            return sign_in(result.user, default)
        if result.locked_until:
            form.form_errors.append(
                "Too many attempts. Try again after " + datetimefmt(result.locked_until) + "."
            )
            return render(template, block="form", status=429, form=form, **context)
        form.form_errors.append(GENERIC_FAILURE)
    status = 422 if request.method == "POST" else 200
    return render(template, block="form", status=status, form=form, **context)


@bp.route("/login", methods=["GET", "POST"])
@guest_limit()
def login():
    """The customer sign-in page."""
    # A POST still signs in: switching logins in one browser ends the first session.
    if request.method == "GET" and current_user.is_authenticated and not current_user.is_staff:
        return redirect(url_for("home.index"))
    terms = access_service.current_terms()

    def check_terms(user, form):
        # Only someone who knows the password gets this far, so asking reveals nothing.
        if not access_service.needs_terms(user):
            return None
        if not form.accept_terms.data:
            form.accept_terms.errors.append(TERMS_NEEDED)
            return render("auth/login.html", block="form", status=422, form=form, terms=terms)
        access_service.accept_terms(user)
        return None

    return sign_in_view(
        CustomerSignInForm(),
        "auth/login.html",
        False,
        url_for("home.index"),
        check=check_terms,
        terms=terms,
    )


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
