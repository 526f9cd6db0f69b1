"""Health checks for load balancers and orchestrators: `/healthz` and `/readyz`.

Both answer JSON without a session, a sign-in, a rate limit or the per-request database
connection (see `portal.db.NO_CONNECTION`), and never set a cookie.
"""

from flask import Blueprint, current_app, jsonify

from ..services import health
from ..services.ratelimit import limiter

bp = Blueprint("health", __name__)
limiter.exempt(bp)

# Seconds a client should wait before asking again when a dependency is down.
RETRY_AFTER = 10


@bp.get("/healthz")
def live():
    """Liveness: the process answers; nothing else is checked (no database)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def ready():
    """Readiness: 200 when the database (and Redis, when configured) answer, else 503."""
    ok, body = health.readiness(current_app.config)
    response = jsonify(body)
    if not ok:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER)
    return response
