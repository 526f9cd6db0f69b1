"""Flask-Login wiring and the access decorators every view uses."""

import time
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import LoginManager, current_user, logout_user

from .services import auth as auth_service
from .services import settings

login_manager = LoginManager()
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)


def _load_user(key: str):
    """The session's user; a staff session viewing the portal as a customer is that login
    inside the customer area, read-only (`services/view_as.py`; the staff user elsewhere)."""
    user = auth_service.load_session_user(key)
    if user is not None and user.is_staff:
        from .services import view_as

        return view_as.seen_as(user)
    return user


def _login_url() -> str:
    endpoint = "staff.login" if (request.blueprint or "").startswith("staff") else "auth.login"
    return url_for(endpoint, next=request.full_path.rstrip("?"))


def _unauthorized():
    # An htmx request gets a full-page redirect, so a sign-in page never lands in a table cell.
    if request.htmx:
        return "", 204, {"HX-Redirect": _login_url()}
    return redirect(_login_url())


def safe_next(target: str | None, default: str) -> str:
    """`next` only when it is a path on this site, never another host or scheme."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def customer_required(role: str | None = None, module: str | None = None):
    """A signed-in portal user with `role` (403 otherwise), in an enabled `module` (404)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return _unauthorized()
            if current_user.is_staff:
                abort(403, "You are signed in to the back office, not as a customer.")
            if module and not settings.get(f"module_{module}"):
                abort(404)
            if role and not current_user.has_role(role):
                abort(
                    403,
                    "Your login does not include this part of the portal. "
                    "Ask your company administrator for access.",
                )
            return view(*args, **kwargs)

        return wrapped

    return decorator


def staff_required(admin: bool = False):
    """A signed-in staff user; `admin=True` also needs the admin role (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or not current_user.is_staff:
                return _unauthorized()
            if current_app.config["STAFF_MFA"] == "required" and not session.get(TWO_STEP_KEY):
                # Signed in without a code (before two-step became required, or while it
                # was off): the session ends here, and the next sign-in asks for the code.
                auth_service.end_session(current_user.session_key)
                logout_user()
                session.clear()
                return _unauthorized()
            if admin and not current_user.is_admin:
                abort(403, "Only back-office administrators can open this page.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


# When the password was last typed in this session (sign-in or re-confirmation), epoch seconds.
FRESH_KEY = "_auth_at"
# Set when this staff session was signed in with an authenticator code (checklist C5).
TWO_STEP_KEY = "_two_step_ok"


def mark_two_step() -> None:
    """Record that this session's sign-in included a valid authenticator code."""
    session[TWO_STEP_KEY] = True


def mark_fresh() -> None:
    """Record that the user has just proved their password in this session."""
    session[FRESH_KEY] = int(time.time())


def is_fresh() -> bool:
    """True when the password was typed within FRESH_LOGIN_TIMEOUT (checklist C6)."""
    typed_at = session.get(FRESH_KEY, 0)
    return time.time() - typed_at <= current_app.config["FRESH_LOGIN_TIMEOUT"].total_seconds()


def fresh_required(view):
    """Sensitive staff changes (settings, staff logins) need a recently typed password.

    A stale session's POST changes nothing: it is sent to confirm the password and then back
    to the page the form was on (checklist C6; Flask-Login's "fresh login" idea, with a time
    limit because our sessions are never restored from a remember cookie).
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        if request.method == "POST" and not is_fresh():
            from .web import redirect_to  # web imports this module's users

            referrer = urlsplit(request.referrer or "")
            back = referrer.path + (f"?{referrer.query}" if referrer.query else "")
            if referrer.netloc != request.host:
                back = ""
            flash("Confirm your password to make this change.", "info")
            return redirect_to(
                url_for("staff.confirm", next=safe_next(back, url_for("staff.index")))
            )
        return view(*args, **kwargs)

    return wrapped
