"""Flask-Login wiring and the access decorators every view uses."""

from functools import wraps
from urllib.parse import urlsplit

from flask import abort, redirect, request, url_for
from flask_login import LoginManager, current_user

from .services import auth as auth_service
from .services import settings

login_manager = LoginManager()
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(auth_service.load_session_user)
    login_manager.unauthorized_handler(_unauthorized)


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
            if admin and not current_user.is_admin:
                abort(403, "Only back-office administrators can open this page.")
            return view(*args, **kwargs)

        return wrapped

    return decorator
