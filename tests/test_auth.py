"""Sign-in and sign-out for customers and staff: generic failures, throttling, server-side
sessions (rotation, revocation, idle and absolute expiry), access by kind of login, htmx."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from argon2 import PasswordHasher

from portal import create_app
from portal.auth import customer_required
from portal.config import Defaults
from portal.db import db, write_txn
from portal.models import ALL_MODELS, AuditLog, LoginSession, PortalUser, StaffUser
from portal.services import auth as auth_service

from . import factories
from .conftest import HX, login, staff_login

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GENERIC = "That email and password do not match an active login."
PROBE = "/_probe/customer"


def add_probes(app):
    """A customer-only page, so access rules are tested without depending on other slices."""
    app.add_url_rule(
        PROBE, "probe_customer", customer_required()(lambda: "customer page"), methods=["GET"]
    )


@pytest.fixture
def build(build_app):
    """Build this test's app with extra config, probe route added and app context pushed."""

    def _build(**config):
        app = build_app(**config)
        add_probes(app)
        return app

    return _build


@pytest.fixture
def app(build):
    return build()


def restart(app, **overrides):
    """A second app instance on the same database, as after a restart or on another worker.

    (`make_app()` would copy a fresh SQLite database over the first one.)
    """
    if not db.is_closed():
        db.close()
    if hasattr(db.obj, "close_all"):
        db.obj.close_all()
    keys = (
        "TESTING",
        "SECRET_KEY",
        "WTF_CSRF_ENABLED",
        "ARGON2_TIME_COST",
        "ARGON2_MEMORY_COST",
        "MAIL_URL",
        "MAIL_SEND_ON_COMMIT",
        "PAYMENT_PROVIDERS",
        "BASE_URL",
        "DATABASE_URL",
    )
    config = {key: app.config[key] for key in keys}
    config.update(INSTANCE_PATH=app.instance_path, **overrides)
    fresh = create_app(config)
    add_probes(fresh)
    return fresh


def signed_in_as_customer(client) -> bool:
    response = client.get(PROBE)
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def signed_in_as_staff(client) -> bool:
    response = client.get("/staff/")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("doorstep_session")
    return cookie.value if cookie else None


def text(response) -> str:
    return response.get_data(as_text=True)


# --- success and `next` -------------------------------------------------------------------


def test_customer_sign_in_redirects_home(client):
    """C1: a correct sign-in answers 303 to the customer home and the user is signed in."""
    factories.portal_user(email="pat@example.com")
    response = login(client, "Pat@Example.com")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert signed_in_as_customer(client)
    assert "Welcome, Pat" in text(client.get("/"))


def test_staff_sign_in_redirects_to_back_office(client):
    """C1: a correct staff sign-in answers 303 to the back-office home."""
    factories.staff(email="sam@example.com")
    response = staff_login(client, "sam@example.com")
    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/"
    assert signed_in_as_staff(client)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "http://evil.com/",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "http:evil.com",
        "javascript:alert(1)",
        "evil.com",
    ],
)
@pytest.mark.parametrize("staff", [False, True], ids=["customer", "staff"])
def test_off_site_next_is_ignored(client, target, staff):
    """STYLE 13: `next` is followed only when it is a path on this site (no open redirect)."""
    if staff:
        factories.staff(email="sam@example.com")
        response = client.post(
            "/staff/login",
            query_string={"next": target},
            data={"email": "sam@example.com", "password": factories.PASSWORD},
        )
        assert response.headers["Location"] == "/staff/"
    else:
        factories.portal_user(email="pat@example.com")
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"email": "pat@example.com", "password": factories.PASSWORD},
        )
        assert response.headers["Location"] == "/"
    assert response.status_code == 303


def test_on_site_next_is_followed(client):
    """STYLE 13: an on-site `next` (path and query) is where sign-in lands."""
    factories.portal_user(email="pat@example.com")
    page = client.get("/login", query_string={"next": "/_probe/customer?tab=2"})
    # The form posts back to itself with `next`, so the plain (no-JS) path keeps it too.
    assert 'action="/login?next=/_probe/customer?tab%3D2"' in text(page)
    response = client.post(
        "/login",
        query_string={"next": "/_probe/customer?tab=2"},
        data={"email": "pat@example.com", "password": factories.PASSWORD},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/_probe/customer?tab=2"


def test_signed_out_visit_sends_to_sign_in_with_next(client):
    """STYLE 13: a protected page sends a guest to sign-in and back again afterwards."""
    factories.portal_user(email="pat@example.com")
    response = client.get(PROBE)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/_probe/customer"
    response = client.post(
        response.headers["Location"],
        data={"email": "pat@example.com", "password": factories.PASSWORD},
    )
    assert response.headers["Location"] == PROBE


# --- generic failure (C1) -----------------------------------------------------------------


def _customer_failure_cases():
    """(email, password) pairs that must all fail the same way; data made by the factories."""
    cases = {}
    factories.portal_user(email="known@example.com")
    cases["unknown email"] = ("nobody@example.com", factories.PASSWORD)
    cases["wrong password"] = ("known@example.com", "wrong password!")
    factories.portal_user(email="disabled@example.com", status="disabled")
    cases["disabled user"] = ("disabled@example.com", factories.PASSWORD)
    factories.portal_user(email="pending@example.com", status="pending")
    cases["pending user"] = ("pending@example.com", factories.PASSWORD)
    factories.portal_user(email="invited@example.com", status="invited", password=None)
    cases["invited, no password yet"] = ("invited@example.com", factories.PASSWORD)
    off = factories.customer(portal_enabled=False)
    factories.portal_user(off, email="off@example.com")
    cases["customer with portal disabled"] = ("off@example.com", factories.PASSWORD)
    return cases


def _normalised(response, email):
    # Headers but those that vary by design: the length (follows the echoed email), the
    # rate-limit countdown, the session cookie (set once per browser, not per outcome) and
    # the request id (new for every request, whatever its outcome).
    # The limiter's countdowns and the CSRF token's signing second tick with the clock.
    varying = (
        "Content-Length",
        "Set-Cookie",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
        "X-Request-Id",
    )
    headers = sorted((k, v) for k, v in response.headers if k not in varying)
    body = re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": "TOKEN"', text(response))
    return response.status_code, body.replace(email, "EMAIL"), headers


def test_customer_failures_are_identical(client, monkeypatch):
    """C1: unknown email, wrong password, disabled/pending/invited user and a customer whose
    portal is off all get the same status, body and header set; an unknown email still does
    the argon2 work (dummy hash)."""
    cases = _customer_failure_cases()
    verified = []
    original = PasswordHasher.verify
    monkeypatch.setattr(
        PasswordHasher,
        "verify",
        lambda self, hash_, secret: verified.append(1) or original(self, hash_, secret),
    )
    seen = {}
    client.get("/login")  # the session cookie (CSRF token) is set once, before any attempt
    for name, (email, password) in cases.items():
        verified.clear()
        response = login(client, email, password)
        assert verified == [1], f"{name}: the password hash must be checked exactly once"
        assert response.status_code == 422, name
        assert GENERIC in text(response), name
        assert f'value="{email}"' in text(response), name
        seen[name] = _normalised(response, email)
        assert not signed_in_as_customer(client), name
    first = next(iter(seen.values()))
    for name, value in seen.items():
        assert value == first, f"{name} differs from the others"
    assert LoginSession.select().count() == 0


def test_staff_failures_are_identical(client):
    """C1: unknown email, wrong password, a deactivated staff login and a customer's
    credentials all fail the same way on the back-office sign-in."""
    factories.staff(email="sam@example.com")
    gone = factories.staff(email="gone@example.com")
    StaffUser.update(active=False).where(StaffUser.id == gone.id).execute()
    factories.portal_user(email="pat@example.com")
    cases = {
        "unknown email": ("nobody@example.com", factories.PASSWORD),
        "wrong password": ("sam@example.com", "wrong password!"),
        "deactivated": ("gone@example.com", factories.PASSWORD),
        "customer login": ("pat@example.com", factories.PASSWORD),
    }
    seen = {}
    for name, (email, password) in cases.items():
        response = staff_login(client, email, password)
        assert response.status_code == 422, name
        assert GENERIC in text(response), name
        seen[name] = _normalised(response, email)
        assert not signed_in_as_staff(client), name
    first = next(iter(seen.values()))
    assert all(value == first for value in seen.values()), seen.keys()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"email": "not-an-email", "password": "x"}, "Enter a valid email."),
        ({"email": "pat@example.com", "password": ""}, "Enter your password."),
        ({"email": "", "password": "x"}, "Enter your email address."),
    ],
)
@pytest.mark.parametrize("url", ["/login", "/staff/login"])
def test_invalid_form_is_422_and_keeps_the_email(client, url, data, message):
    """C1/STYLE 12: an invalid form answers 422 with the message next to the field and the
    email kept; nothing is counted as a failed sign-in."""
    response = client.post(url, data=data)
    assert response.status_code == 422
    assert message in text(response)
    assert f'name="email" required type="email" value="{data["email"]}"' in text(response)
    assert 'name="password" required type="password" value=""' in text(response)


# --- throttling (C2) ----------------------------------------------------------------------


def test_failures_per_email_lock_the_login_across_restarts(app, client):
    """C2: after 5 failures for one email the sign-in answers 429 "Try again after"; the
    correct password does not sign in during the lock; the lock lives in the database, so a
    new app instance (restart, other worker) keeps it; it ends after the lockout."""
    factories.portal_user(email="pat@example.com")
    with time_machine.travel(START, tick=False) as clock:
        for attempt in range(1, 5):
            response = login(client, "pat@example.com", f"guess {attempt}")
            assert response.status_code == 422
        response = login(client, "PAT@example.com", "guess 5")  # same key, any case
        assert response.status_code == 429
        assert "Try again after Mar 2, 2026 09:15 UTC." in text(response)

        response = login(client, "pat@example.com")
        assert response.status_code == 429
        assert "Try again after" in text(response)
        assert not signed_in_as_customer(client)
        assert LoginSession.select().count() == 0

        other_worker = restart(app).test_client()
        response = login(other_worker, "pat@example.com")
        assert response.status_code == 429
        assert "Try again after Mar 2, 2026 09:15 UTC." in text(response)

        clock.shift(timedelta(minutes=15, seconds=1))
        response = login(other_worker, "pat@example.com")
        assert response.status_code == 303
        assert signed_in_as_customer(other_worker)


def test_unknown_email_is_throttled_like_a_known_one(client):
    """C1/C2: the lock does not reveal whether an email has a login."""
    factories.portal_user(email="pat@example.com")
    answers = {}
    for email in ("pat@example.com", "nobody@example.com"):
        statuses = [login(client, email, "wrong").status_code for _ in range(6)]
        answers[email] = statuses
    assert answers["pat@example.com"] == answers["nobody@example.com"] == [422] * 4 + [429] * 2


def test_staff_sign_in_is_throttled_per_email(client):
    """C2: the back-office sign-in has the same per-email lock."""
    factories.staff(email="sam@example.com")
    for _ in range(5):
        response = staff_login(client, "sam@example.com", "wrong")
    assert response.status_code == 429
    response = staff_login(client, "sam@example.com")
    assert response.status_code == 429
    assert not signed_in_as_staff(client)


def client_from(app, address: str):
    """A test client whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failures_per_client_address_lock_that_address_across_restarts(app):
    """C2: 30 failures from one address (each for a different email) lock that address, for
    every email, also on a new app instance; other addresses are not affected."""
    factories.portal_user(email="pat@example.com")
    attacker = client_from(app, "203.0.113.9")
    with time_machine.travel(START, tick=False):
        statuses = [
            login(attacker, f"victim{n}@example.com", "123456").status_code for n in range(30)
        ]
        assert statuses == [422] * 29 + [429]

        # A new instance has a fresh in-memory burst limiter: what still answers 429 is the
        # per-address lock in the database.
        fresh = restart(app)
        attacker = client_from(fresh, "203.0.113.9")
        response = login(attacker, "pat@example.com")
        assert response.status_code == 429
        assert "Try again after Mar 2, 2026 09:15 UTC." in text(response)

        neighbour = client_from(fresh, "198.51.100.4")
        assert login(neighbour, "pat@example.com").status_code == 303


def test_success_clears_the_email_counter(client):
    """C2: failures before a successful sign-in do not count toward a later lock."""
    factories.portal_user(email="pat@example.com")
    for _ in range(4):
        login(client, "pat@example.com", "wrong")
    assert login(client, "pat@example.com").status_code == 303
    client.post("/logout")
    for _ in range(4):
        assert login(client, "pat@example.com", "wrong").status_code == 422


def test_htmx_lockout_answers_the_form_fragment(client):
    """C2/STYLE 12: a targeted htmx sign-in under lock gets the form fragment with 429
    (configured to swap), so the message shows where the person is looking."""
    factories.portal_user(email="pat@example.com")
    for _ in range(5):
        login(client, "pat@example.com", "wrong")
    response = client.post("/login", data={"email": "pat@example.com", "password": "x"}, headers=HX)
    assert response.status_code == 429
    body = text(response)
    assert "<html" not in body and 'id="signin-form"' in body
    assert "Try again after" in body


# --- sessions (D1, D3, D4, D5, D6) --------------------------------------------------------


def test_sign_in_rotates_the_session(client):
    """D1/D3: sign-in starts a new session: the cookie value changes and anything planted
    in the session before (fixation) is gone; the cookie is HttpOnly and SameSite=Lax."""
    factories.portal_user(email="pat@example.com")
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    before = session_cookie(client)
    response = login(client, "pat@example.com")
    after = session_cookie(client)
    assert after and after != before
    with client.session_transaction() as session:
        assert "planted" not in session
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookie_is_secure_over_https(build):
    """D1: served over HTTPS (BASE_URL https), the session cookie is also Secure."""
    app = build(BASE_URL="https://portal.example.com")
    factories.portal_user(email="pat@example.com")
    client = app.test_client()
    response = client.post(
        "/login",
        data={"email": "pat@example.com", "password": factories.PASSWORD},
        base_url="https://localhost",
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_the_cookie_holds_a_random_key_not_the_user_id(client):
    """D4: the session names a random server-side session, stored only as a keyed digest."""
    user = factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    with client.session_transaction() as session:
        key = session["_user_id"]
    assert len(key) >= 40 and key != str(user.id)
    row = LoginSession.get()
    assert row.portal_user_id == user.id and row.staff_user_id is None
    assert key not in row.key_hash


def test_sign_out_revokes_the_session_server_side(client):
    """D4: after sign-out a copied session cookie no longer signs anyone in."""
    factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    stolen = session_cookie(client)
    response = client.post("/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert "You are signed out." in text(client.get("/login"))
    assert LoginSession.get().revoked_at is not None

    client.set_cookie("doorstep_session", stolen)
    assert not signed_in_as_customer(client)
    assert "/logout" not in text(client.get("/"))


def test_staff_sign_out_revokes_the_session_server_side(client):
    """D4: the same for a back-office session."""
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    stolen = session_cookie(client)
    response = client.post("/staff/logout")
    assert response.headers["Location"] == "/staff/login"
    client.set_cookie("doorstep_session", stolen)
    assert not signed_in_as_staff(client)


def test_sign_out_is_post_only(client):
    """F3: GET never signs out (no state change on GET)."""
    factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    assert client.get("/logout").status_code == 405
    assert signed_in_as_customer(client)


def test_signing_in_as_someone_else_ends_the_first_session(client):
    """D4: switching logins in one browser revokes the first session server-side."""
    factories.portal_user(email="pat@example.com")
    factories.portal_user(email="lee@example.com")
    login(client, "pat@example.com")
    first = session_cookie(client)
    login(client, "lee@example.com")
    assert signed_in_as_customer(client)
    client.set_cookie("doorstep_session", first)
    assert not signed_in_as_customer(client)


def test_set_password_ends_every_session_of_that_user(app):
    """D5/B8: a new password ends the user's other sessions; only the new password works."""
    user = factories.portal_user(email="pat@example.com")
    other = factories.portal_user(email="lee@example.com")
    laptop, phone, colleague = app.test_client(), app.test_client(), app.test_client()
    for client, email in ((laptop, "pat@example.com"), (phone, "pat@example.com")):
        login(client, email)
    login(colleague, "lee@example.com")
    stamp = user.auth_stamp

    with write_txn():
        auth_service.set_password(PortalUser.get_by_id(user.id), "a brand new passphrase")

    assert not signed_in_as_customer(laptop)
    assert not signed_in_as_customer(phone)
    assert signed_in_as_customer(colleague)
    assert PortalUser.get_by_id(user.id).auth_stamp != stamp
    assert PortalUser.get_by_id(other.id).auth_stamp == other.auth_stamp
    assert login(laptop, "pat@example.com").status_code == 422
    assert login(laptop, "pat@example.com", "a brand new passphrase").status_code == 303


def test_disabling_a_user_or_the_customer_ends_sessions(client):
    """D5: a disabled login, or a customer whose portal is switched off, is signed out at
    the next request."""
    user = factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    PortalUser.update(status="disabled").where(PortalUser.id == user.id).execute()
    assert not signed_in_as_customer(client)

    PortalUser.update(status="active").where(PortalUser.id == user.id).execute()
    login(client, "pat@example.com")
    assert signed_in_as_customer(client)
    customer = user.contact.customer
    type(customer).update(portal_enabled=False).where(type(customer).id == customer.id).execute()
    assert not signed_in_as_customer(client)


def test_idle_sessions_expire(build):
    """D6: a session unused for longer than SESSION_IDLE_TIMEOUT is signed out server-side;
    activity keeps it alive."""
    app = build(SESSION_IDLE_TIMEOUT=timedelta(minutes=30))
    factories.portal_user(email="pat@example.com")
    client = app.test_client()
    with time_machine.travel(START, tick=False) as clock:
        login(client, "pat@example.com")
        clock.shift(timedelta(minutes=29))
        assert signed_in_as_customer(client)
        clock.shift(timedelta(minutes=29))  # 58 minutes in, 29 idle
        assert signed_in_as_customer(client)
        clock.shift(timedelta(minutes=31))
        assert not signed_in_as_customer(client)


def test_sessions_have_an_absolute_lifetime(build):
    """D6: even an active session ends after SESSION_LIFETIME (checked server-side: the
    Flask cookie itself would live longer here)."""
    app = build(
        SESSION_LIFETIME=timedelta(hours=3),
        SESSION_IDLE_TIMEOUT=timedelta(hours=1),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    factories.staff(email="sam@example.com")
    client = app.test_client()
    with time_machine.travel(START, tick=False) as clock:
        staff_login(client, "sam@example.com")
        for _ in range(3):
            clock.shift(timedelta(minutes=59))
            assert signed_in_as_staff(client)
        clock.shift(timedelta(minutes=4))  # 3 h 1 min after sign-in
        assert not signed_in_as_staff(client)


def test_default_session_lifetimes(client):
    """D6: documented defaults: 12 h absolute, 2 h idle; the signed cookie lives no longer."""
    assert Defaults.SESSION_LIFETIME == timedelta(hours=12)
    assert Defaults.SESSION_IDLE_TIMEOUT == timedelta(hours=2)
    assert Defaults.PERMANENT_SESSION_LIFETIME <= Defaults.SESSION_LIFETIME
    factories.portal_user(email="pat@example.com")
    with time_machine.travel(START, tick=False):
        login(client, "pat@example.com")
    row = LoginSession.get()
    assert row.created_at == START
    assert row.expires_at == START + timedelta(hours=12)


# --- who may open what (E5) ---------------------------------------------------------------


def test_staff_cannot_open_customer_pages(client):
    """E5: a back-office login is refused (403) on customer pages."""
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    response = client.get(PROBE)
    assert response.status_code == 403
    assert "signed in to the back office" in text(response)


def test_customers_cannot_open_staff_pages(client):
    """E5: a customer login never gets a back-office page; it is sent to the staff sign-in."""
    factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    response = client.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/"
    response = client.get("/staff/", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/staff/login?next=/staff/"


@pytest.mark.parametrize(
    "url, login_url",
    [(PROBE, "/login?next=/_probe/customer"), ("/staff/", "/staff/login?next=/staff/")],
)
def test_htmx_request_while_signed_out_redirects_the_page(client, url, login_url):
    """STYLE 13/E5: an htmx request to a protected page while signed out answers 204 with
    HX-Redirect to sign-in, so the sign-in page never lands inside a fragment."""
    response = client.get(url, headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == login_url
    assert text(response) == ""


# --- htmx and the sign-in form (STYLE 9, 12) ----------------------------------------------


@pytest.mark.parametrize("url", ["/login", "/staff/login"])
def test_invalid_sign_in_page_or_fragment(client, url):
    """STYLE 9/12: a targeted htmx POST of an invalid sign-in gets only the form (422); a
    plain or boosted POST gets the whole page; both vary on HX-Request."""
    data = {"email": "not-an-email", "password": "x"}
    fragment = client.post(url, data=data, headers=HX)
    assert fragment.status_code == 422
    body = text(fragment).strip()
    assert body.startswith("<form") and body.endswith("</form>")
    assert 'id="signin-form"' in body and "Enter a valid email." in body
    assert "HX-Request" in fragment.headers["Vary"]

    for headers in ({}, {**HX, "HX-Boosted": "true"}):
        page = client.post(url, data=data, headers=headers)
        assert page.status_code == 422
        assert text(page).startswith("<!doctype html>")
        assert 'id="signin-form"' in text(page)
        assert "HX-Request" in page.headers["Vary"]


def test_htmx_sign_in_success_redirects_the_whole_page(client):
    """STYLE 12: a targeted htmx sign-in answers HX-Redirect (not a page inside the form)."""
    factories.portal_user(email="pat@example.com")
    response = client.post(
        "/login",
        query_string={"next": PROBE},
        data={"email": "pat@example.com", "password": factories.PASSWORD},
        headers=HX,
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == PROBE
    assert signed_in_as_customer(client)


def test_get_sign_in_page_varies_on_htmx(client):
    """STYLE 9: the sign-in page varies on HX-Request."""
    response = client.get("/login")
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]


# --- password storage (C4, K3) ------------------------------------------------------------


def test_password_hashes_are_argon2id_with_strong_parameters(build):
    """C4: passwords are stored as argon2id with m >= 19 MiB, t >= 2, p = 1 in the default
    configuration, for portal users and staff."""
    build(
        ARGON2_TIME_COST=Defaults.ARGON2_TIME_COST,
        ARGON2_MEMORY_COST=Defaults.ARGON2_MEMORY_COST,
    )
    user = factories.portal_user(email="pat@example.com")
    staff = factories.staff(email="sam@example.com")
    for stored in (
        PortalUser.get_by_id(user.id).password_hash,
        StaffUser.get_by_id(staff.id).password_hash,
    ):
        match = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+", stored)
        assert match, stored
        memory, time_cost, lanes = map(int, match.groups())
        assert memory >= 19 * 1024 and time_cost >= 2 and lanes == 1


def test_old_hashes_are_upgraded_at_sign_in(build):
    """C4: a hash made with lighter parameters is replaced at the next successful sign-in."""
    app = build(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=64)
    user = factories.portal_user(email="pat@example.com")
    light = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(factories.PASSWORD)
    PortalUser.update(password_hash=light).where(PortalUser.id == user.id).execute()
    assert login(app.test_client(), "pat@example.com").status_code == 303
    stored = PortalUser.get_by_id(user.id).password_hash
    assert stored.startswith("$argon2id$v=19$m=64,t=2,p=1$")
    assert login(app.test_client(), "pat@example.com").status_code == 303


def test_no_plaintext_password_or_session_key_is_stored_or_logged(client, caplog):
    """C4/K3/D4: after sign-ins, failures and sign-outs, no table holds a typed password or a
    raw session key, and no log line holds a password."""
    factories.portal_user(email="pat@example.com")
    factories.staff(email="sam@example.com")
    wrong = "Tr0ub4dor&3-wrong"
    login(client, "pat@example.com", wrong)
    login(client, "nobody@example.com", wrong)
    login(client, "pat@example.com")
    with client.session_transaction() as session:
        key = session["_user_id"]
    client.post("/logout")
    staff_login(client, "sam@example.com", wrong)
    staff_login(client, "sam@example.com")

    dump = []
    for model in ALL_MODELS:
        for row in model.select().tuples():
            dump.append(" ".join(str(value) for value in row))
    everything = "\n".join(dump)
    for secret in (factories.PASSWORD, wrong, key):
        assert secret not in everything
        assert secret not in caplog.text
    assert AuditLog.select().where(AuditLog.action == "auth.sign_in_failed").count() == 3
    assert AuditLog.select().where(AuditLog.action == "auth.signed_out").count() == 1
