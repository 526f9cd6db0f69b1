"""The floor: each benchmarked page rendered by the portal's own templates from data already
in memory, and nothing else.

At start-up every path in BENCH_PATHS is requested once through the real portal, signed in
with the session cookie in BENCH_COOKIE, and the template and context it rendered are kept.
From then on a request for that path only renders the kept template with the kept context
(settings and signed-in user included): no database, no session lookup, no access checks, no
before/after hooks. Served by the same gunicorn to the same clients as the portal and the
bare twin, its throughput is the most any implementation rendering these pages with these
Jinja templates could reach on this machine; the portal's ratio can only approach it.
"""

import json
import os

import flask.templating
from flask import g, request

from portal import create_app

app = create_app()
PATHS = json.loads(os.environ.get("BENCH_PATHS", "[]"))
FROZEN: dict = {}


def _capture() -> None:
    kept = {}
    original = flask.templating._render

    def keep(app_, template, context):
        html = original(app_, template, context)
        kept["page"] = (template, dict(context))
        return html

    flask.templating._render = keep
    try:
        client = app.test_client(use_cookies=False)
        for path in PATHS:
            response = client.get(path, headers={"Cookie": os.environ["BENCH_COOKIE"]})
            assert response.status_code == 200, (path, response.status_code)
            template, context = kept.pop("page")
            FROZEN[path] = (template, context, context["portal"])
    finally:
        flask.templating._render = original


def _render_kept(**_):
    """The kept page for this path, rendered again (the settings it read are kept too)."""
    template, context, values = FROZEN[request.full_path.rstrip("?")]
    g.portal_settings = values
    g._login_user = context["current_user"]  # where Flask-Login keeps the request's user
    return template.render(context)


if PATHS:
    _capture()
    for funcs in (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.teardown_appcontext_funcs,
        app.url_value_preprocessors,
    ):
        funcs.clear()
    for endpoint in list(app.view_functions):
        app.view_functions[endpoint] = _render_kept
