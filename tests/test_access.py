"""The sign-in page driven by settings (login message, terms, links), and portal access:
invitations, access requests and the service API the back office calls."""

import pytest

from portal.models import AuditLog, LoginSession, PortalUser, TermsAcceptance
from portal.services import settings

from . import factories
from .conftest import HX, login

TERMS = "Use of this portal is **subject** to our terms of trade."


def set_terms(text=TERMS, required=True):
    """Staff edit of the terms: a new text gets a new version."""
    settings.update({"login_terms": text, "require_terms_acceptance": required})


def signed_in(client) -> bool:
    return client.get("/").status_code == 200 and b"Sign out" in client.get("/").data


# --- the sign-in page ---------------------------------------------------------------------


def test_login_message_is_rendered_from_markdown_and_sanitised(client):
    settings.save({"login_message": "**Office closed** Friday <script>alert(1)</script>"})
    html = client.get("/login").get_data(as_text=True)
    assert "<strong>Office closed</strong>" in html
    assert "<script>alert(1)" not in html


def test_terms_are_shown_without_a_box_when_acceptance_is_not_required(client):
    set_terms(required=False)
    html = client.get("/login").get_data(as_text=True)
    assert "<strong>subject</strong>" in html
    assert 'name="accept_terms"' not in html
    assert "By signing in you agree" in html


def test_no_terms_section_without_terms(client):
    html = client.get("/login").get_data(as_text=True)
    assert "Terms of use" not in html


def test_required_terms_block_sign_in_until_ticked(client):
    """C1 still holds: a wrong password with or without the box gets the generic failure."""
    user = factories.portal_user(email="pat@example.com")
    set_terms()
    html = client.get("/login").get_data(as_text=True)
    assert 'name="accept_terms"' in html

    wrong = client.post("/login", data={"email": "pat@example.com", "password": "nope nope"})
    assert wrong.status_code == 422
    assert "do not match" in wrong.get_data(as_text=True)

    unticked = client.post("/login", data={"email": user.email, "password": factories.PASSWORD})
    assert unticked.status_code == 422
    body = unticked.get_data(as_text=True)
    assert 'id="accept_terms-error"' in body and "Tick the box" in body
    assert LoginSession.select().count() == 0
    assert TermsAcceptance.select().count() == 0

    ok = client.post(
        "/login",
        data={"email": user.email, "password": factories.PASSWORD, "accept_terms": "y"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert ok.status_code == 303
    acceptance = TermsAcceptance.get()
    version = settings.get("login_terms_version")
    assert (acceptance.user_id, acceptance.version, acceptance.ip) == (
        user.id,
        version,
        "198.51.100.7",
    )
    assert acceptance.accepted_at is not None
    assert PortalUser.get_by_id(user.id).terms_version == version
    assert AuditLog.get(AuditLog.action == "access.terms_accepted").ip == "198.51.100.7"


def test_unticked_box_answers_the_form_fragment_to_htmx(client):
    user = factories.portal_user()
    set_terms()
    response = client.post(
        "/login", data={"email": user.email, "password": factories.PASSWORD}, headers=HX
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "<html" not in body and "Tick the box" in body


def test_accepted_version_is_not_asked_again_but_a_new_version_is(app):
    user = factories.portal_user()
    set_terms()
    first = app.test_client()
    data = {"email": user.email, "password": factories.PASSWORD, "accept_terms": "y"}
    assert first.post("/login", data=data).status_code == 303

    again = app.test_client()
    assert login(again, user.email).status_code == 303  # same version: no box needed

    set_terms("New terms, version two.")
    later = app.test_client()
    assert login(later, user.email).status_code == 422
    assert later.post("/login", data=data).status_code == 303
    versions = [a.version for a in TermsAcceptance.select().order_by(TermsAcceptance.id)]
    assert versions == [1, 2]


def test_staff_sign_in_never_asks_for_customer_terms(client):
    staff = factories.staff()
    set_terms()
    response = client.post(
        "/staff/login", data={"email": staff.email, "password": factories.PASSWORD}
    )
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("switch", "label"),
    [
        ("quick_pay_enabled", "Pay an invoice without signing in"),
    ],
)
def test_sign_in_links_follow_their_switches(client, switch, label):
    on = client.get("/login").get_data(as_text=True)
    assert label in on
    settings.save({switch: False})
    off = client.get("/login").get_data(as_text=True)
    assert label not in off
