"""Every back-office route denies by default (checklist E5), htmx partials included, and
htmx posts carry the CSRF token in a header (F-rows)."""

import pytest

from portal.db import db
from portal.services import settings

from . import factories
from .conftest import HX, login, staff_login

BLUEPRINTS = (
    "staff_settings",
    "staff_customers",
    "staff_invoices",
    "staff_import",
    "staff_payments",
    "staff_queue",
    "staff_outbox",
    "staff_audit",
    "staff_users",
)
ADMIN_ONLY = ("staff_settings", "staff_audit", "staff_users")


def routes(app):
    """(blueprint, method, url) for every route of the back office, with dummy arguments."""
    found = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        if blueprint not in BLUEPRINTS:
            continue
        values = {
            name: 1 if rule._converters[name].__class__.__name__ == "IntegerConverter" else "x"
            for name in rule.arguments
        }
        url = rule.build(values)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((blueprint, method, url))
    return found


def test_every_route_is_covered_by_this_matrix(app):
    """Every back-office blueprint has routes here: a new one cannot slip past."""
    assert {b for b, _, _ in routes(app)} == set(BLUEPRINTS)


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_signed_out_and_customers_are_sent_to_staff_sign_in(app, client, headers):
    """Nobody without a staff login reaches a back-office route or partial."""
    factories.portal_user(email="pat@example.com")
    for who in ("anonymous", "customer"):
        if who == "customer":
            login(client, "pat@example.com")
        for _blueprint, method, url in routes(app):
            response = client.open(url, method=method, headers=headers)
            assert response.status_code in (302, 204), (who, method, url)
            target = response.headers.get("Location") or response.headers.get("HX-Redirect")
            assert target and target.startswith("/staff/login"), (who, method, url)


def test_agents_get_403_on_admin_pages(app, client):
    """Agents work with customers, invoices and payments; admin pages answer 403."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    for blueprint, method, url in routes(app):
        if blueprint in ADMIN_ONLY:
            for headers in ({}, HX):
                response = client.open(url, method=method, headers=headers)
                assert response.status_code == 403, (method, url)


def test_htmx_posts_send_the_csrf_token_in_a_header(make_app):
    """F1: with CSRF on, an htmx post with the X-CSRFToken header passes; without it, 400."""
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.connect(reuse_if_open=True)
        factories.staff(email="boss@example.com", admin=True)
        client = app.test_client()
        page = client.get("/staff/login").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        client.post(
            "/staff/login",
            data={"email": "boss@example.com", "password": factories.PASSWORD, "csrf_token": token},
        )
        page = client.get("/staff/settings/").get_data(as_text=True)
        token = page.split('"X-CSRFToken": "')[1].split('"')[0]
        url = "/staff/settings/preview/login_message"
        data = {"login_message": "*hi*"}
        assert client.post(url, data=data, headers=HX).status_code == 400
        response = client.post(url, data=data, headers={**HX, "X-CSRFToken": token})
        assert response.status_code == 200 and "<em>hi</em>" in response.get_data(as_text=True)
        response = client.post("/staff/customers/new", data={"account_number": "A", "name": "A"})
        assert response.status_code == 400
        assert settings.get("login_message") == ""
        db.close()
