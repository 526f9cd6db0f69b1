"""Coarse per-address burst limits on guest endpoints (Flask-Limiter).

These sit in front of the database-backed per-target throttles in `throttle.py`; they only
blunt floods. Storage is `PORTAL_RATELIMIT_STORAGE_URI`: `memory://` counts per process,
`redis://` shares counts between workers and hosts.
"""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

# One place for the numbers (documented in the README).
GUEST_FORM = "30 per minute; 300 per hour"


def init_app(app) -> None:
    # The limiter is one module-level object: without an explicit value, an app built with
    # RATELIMIT_ENABLED=False would leave it switched off for every later app in the process.
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
    # Every limit here is a decorator on a guest endpoint, checked by the decorator itself.
    # The extension's own before-request hook looks for default and application-wide
    # limits on every request of every page; without any configured, it only costs time.
    hooks = app.before_request_funcs.get(None, [])
    configured = app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION")
    if limiter._check_request_limit in hooks and not configured:
        hooks.remove(limiter._check_request_limit)


def guest_limit():
    """Decorator for guest POST endpoints: a burst limit per client address."""
    return limiter.limit(GUEST_FORM, methods=["POST"])
