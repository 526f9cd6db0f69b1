"""Burst limits of Flask-Limiter in front of the database throttles (checklist A5).

The guest forms carry their own limit (a decorator); the extension's app-wide hook is
taken off the request path unless an operator configures default or application limits.
"""

from portal.services.ratelimit import limiter


def _hooked(app) -> bool:
    return limiter._check_request_limit in app.before_request_funcs.get(None, [])


def test_guest_forms_keep_their_burst_limit_without_the_app_wide_hook(build_app):
    """A5: one address posting the quick-pay form over and over gets 429, while pages
    without a limit never pass through the limiter."""
    app = build_app()
    assert not _hooked(app)
    client = app.test_client()
    statuses = [
        client.post("/pay/", data={"invoice_number": f"INV-{n}", "code": "X"}).status_code
        for n in range(32)
    ]
    assert 429 in statuses and statuses.index(429) >= 30, statuses
    assert client.get("/login").status_code == 200


def test_limits_switched_off_still_start(build_app):
    app = build_app(RATELIMIT_ENABLED=False)
    client = app.test_client()
    statuses = {
        client.post("/pay/", data={"invoice_number": f"INV-{n}", "code": "X"}).status_code
        for n in range(32)
    }
    assert 429 not in statuses


def test_configured_application_limits_apply_to_every_page(build_app):
    app = build_app(RATELIMIT_APPLICATION="3 per minute")
    assert _hooked(app)
    client = app.test_client()
    assert [client.get("/login").status_code for _ in range(4)] == [200, 200, 200, 429]
