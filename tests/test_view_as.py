"""Staff "view as customer" (issue 19): read-only, marked, audited, time-limited, and never
a sign-in as the customer."""

from datetime import timedelta

import pytest

from portal.db import utcnow
from portal.models import AuditLog, LoginSession, OutboxMessage, PortalUser
from portal.models_view_as import ViewAsGrant

from . import factories
from .conftest import login, staff_login
from .test_authz_matrix import build_world, customer_routes, url_of


def _start(client, customer, user=None):
    return client.post(
        f"/staff/view-as/customers/{customer.id}", data={"login": user.id if user else 0}
    )


@pytest.fixture
def world(app):
    objects, logins = build_world()
    acme = logins["all"].contact.customer
    staff = factories.staff(email="agent@example.com")
    return objects, logins, acme, staff


def test_staff_sees_the_portal_as_the_login_with_the_banner_and_audit(app, world):
    objects, logins, acme, staff = world
    viewed = logins["site"]
    before = PortalUser.get_by_id(viewed.id)
    client = app.test_client()
    staff_login(client, staff.email)
    answer = _start(client, acme, viewed)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/")
    home = client.get("/").get_data(as_text=True)
    assert f"Viewing as {viewed.display_name} at {acme.name}" in home and "read-only" in home
    assert "Stop" in home
    # The login's scope: a site-limited login does not see the other site's invoice.
    assert client.get(url_of(app, "billing.show", "own", objects)).status_code == 200
    assert client.get(url_of(app, "billing.show", "site", objects)).status_code == 404
    # Another customer stays out of reach.
    assert client.get(url_of(app, "billing.show", "other", objects)).status_code == 404
    # The back office still works in the same session.
    assert client.get("/staff/customers/").status_code == 200
    started = AuditLog.get(AuditLog.action == "view_as.started")
    assert started.actor_id == staff.id and viewed.email in started.detail
    # Nobody signed in as the customer: no session, stamp, last sign-in or terms change.
    after = PortalUser.get_by_id(viewed.id)
    assert after.auth_stamp == before.auth_stamp and after.last_login_at == before.last_login_at
    assert after.terms_version == before.terms_version
    assert not LoginSession.select().where(LoginSession.portal_user == viewed.id).exists()
    # Stopping ends it: the customer area is the staff user's again (403), audited.
    stop = client.post("/staff/view-as/stop")
    assert stop.status_code == 303 and f"/staff/customers/{acme.id}" in stop.headers["Location"]
    assert client.get("/invoices/").status_code == 403
    assert AuditLog.select().where(AuditLog.action == "view_as.stopped").count() == 1
    assert ViewAsGrant.get().end_reason == "stopped"


def test_a_viewing_staff_user_cannot_post_anything_in_the_customer_area(app, world):
    """Every POST route outside the back office (sampled from the URL map) answers 403 and
    writes nothing (B-series: the read-only view)."""
    objects, logins, acme, staff = world
    client = app.test_client()
    staff_login(client, staff.email)
    assert _start(client, acme).status_code == 303
    audits, emails = AuditLog.select().count(), OutboxMessage.select().count()
    posts = sorted(
        (endpoint, method) for endpoint, method in customer_routes(app) if method != "GET"
    )
    assert len(posts) > 20
    for endpoint, method in posts:
        url = url_of(app, endpoint, "own", objects)
        answer = client.open(url, method=method, data={"amount": "1", "body": "x"})
        assert answer.status_code == 403, (endpoint, answer.status_code)
        assert "read-only" in answer.get_data(as_text=True)
    # Guest and sign-in forms are refused too (no payment, no sign-in, no email).
    for url in ("/pay/", "/login", "/logout"):
        assert client.post(url, data={}).status_code == 403
    assert AuditLog.select().count() == audits
    assert OutboxMessage.select().count() == emails


def test_every_customer_page_reads_without_writing_for_the_whole_account(app, world):
    """Each GET page of the customer area opens as the whole account on a read-only database
    connection: nothing a page does can be written."""
    objects, logins, acme, staff = world
    client = app.test_client()
    staff_login(client, staff.email)
    assert _start(client, acme).status_code == 303
    gets = sorted(e for e, m in customer_routes(app) if m == "GET")
    for endpoint in gets:
        url = url_of(app, endpoint, "own", objects)
        answer = client.get(url)
        assert answer.status_code < 500, (endpoint, answer.status_code)
    assert client.get("/").status_code == 200


def test_a_customer_cannot_start_a_view(app, world):
    objects, logins, acme, staff = world
    customer = app.test_client()
    login(customer, logins["all"].email)
    answer = _start(customer, acme, logins["site"])
    assert answer.status_code in (302, 403)
    assert ViewAsGrant.select().count() == 0


def test_a_login_of_another_customer_cannot_be_viewed(app, world):
    objects, logins, acme, staff = world
    other = factories.customer()
    stranger = factories.portal_user(other)
    client = app.test_client()
    staff_login(client, staff.email)
    _start(client, acme, stranger)
    assert ViewAsGrant.select().count() == 0
    assert client.get("/invoices/").status_code == 403


def test_a_view_expires(app, world):
    objects, logins, acme, staff = world
    client = app.test_client()
    staff_login(client, staff.email)
    _start(client, acme, logins["all"])
    assert client.get("/invoices/").status_code == 200
    ViewAsGrant.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    answer = client.get("/invoices/")
    assert answer.status_code == 302 and f"/staff/customers/{acme.id}" in answer.headers["Location"]
    assert ViewAsGrant.get().end_reason == "expired"
    assert client.get("/invoices/").status_code == 403
