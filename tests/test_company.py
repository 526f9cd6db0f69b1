"""My account (profile, password, permissions in words) and company administration."""

import re

import pytest

from portal.models import AuditLog, Contact, LoginSession, PortalUser

from . import factories
from .conftest import HX, login

NEW = "harbour lights evening"


@pytest.fixture
def acme():
    customer = factories.customer(name="Acme")
    plant1 = factories.site(customer, name="Plant 1")
    plant2 = factories.site(customer, name="Plant 2")
    factories.site(customer, name="Depot")
    return customer, plant1, plant2


# --- my account ---------------------------------------------------------------------------


def test_permissions_in_plain_words(client, acme):
    customer, plant1, plant2 = acme
    user = factories.portal_user(customer, roles="invoices,cases", sites=[plant2, plant1])
    login(client, user.email)
    html = client.get("/account/").get_data(as_text=True)
    assert "can see and pay invoices for Plant 1 and Plant 2" in html
    assert "can open and follow support cases for Plant 1 and Plant 2" in html
    assert "statements" not in html.split("What you can do")[1].split("</ul>")[0]


def test_whole_account_admin_words(client, acme):
    customer, _, _ = acme
    user = factories.portal_user(customer)
    login(client, user.email)
    html = client.get("/account/").get_data(as_text=True)
    assert "can see and pay invoices for all of Acme" in html
    assert "can manage the portal logins of Acme" in html


def test_profile_update_ignores_extra_fields(client, acme):
    """E4: email, roles and company cannot be set from the profile form."""
    customer, _, _ = acme
    user = factories.portal_user(customer, roles="invoices")
    other = factories.customer()
    login(client, user.email)
    response = client.post(
        "/account/profile",
        data={
            "first_name": "Jo",
            "last_name": "Lane",
            "phone": "555-0199",
            "email": "evil@example.com",
            "roles": "company_admin",
            "customer": other.id,
        },
    )
    assert response.status_code == 303
    contact = Contact.get_by_id(user.contact_id)
    assert (contact.first_name, contact.last_name, contact.phone) == ("Jo", "Lane", "555-0199")
    assert contact.email == user.email and contact.customer_id == customer.id
    assert PortalUser.get_by_id(user.id).roles == "invoices"
    assert AuditLog.get(AuditLog.action == "account.profile_changed").actor_id == user.id


def test_profile_requires_a_first_name(client):
    user = factories.portal_user()
    login(client, user.email)
    response = client.post("/account/profile", data={"first_name": ""}, headers=HX)
    assert response.status_code == 422
    assert 'id="profile-first-error"' in response.get_data(as_text=True)


def test_change_password_needs_the_current_one_and_ends_other_sessions(app, client, mailbox):
    """C6 and D5."""
    user = factories.portal_user()
    other = app.test_client()
    login(other, user.email)
    login(client, user.email)
    wrong = client.post(
        "/account/password",
        data={"current_password": "not it at all", "password": NEW, "confirm": NEW},
    )
    assert wrong.status_code == 422
    assert "not your current password" in wrong.get_data(as_text=True)
    ok = client.post(
        "/account/password",
        data={"current_password": factories.PASSWORD, "password": NEW, "confirm": NEW},
    )
    assert (ok.status_code, ok.headers["Location"]) == (303, "/account/")
    assert b"Sign out" in client.get("/account/", follow_redirects=True).data  # still signed in
    assert b"Sign out" not in other.get("/").data  # the other browser is out
    assert LoginSession.select().where(LoginSession.revoked_at.is_null()).count() == 1
    assert "was changed" in mailbox.wait_for(1)[0]["Subject"]
    assert login(app.test_client(), user.email, NEW).status_code == 303


def test_change_password_applies_the_policy(client):
    user = factories.portal_user()
    login(client, user.email)
    response = client.post(
        "/account/password",
        data={"current_password": factories.PASSWORD, "password": "short", "confirm": "short"},
    )
    assert response.status_code == 422 and "at least 10 characters" in response.get_data(
        as_text=True
    )


# --- company administration ------------------------------------------------------------


def test_company_page_lists_logins_with_last_sign_in(client, acme):
    customer, plant1, _ = acme
    admin = factories.portal_user(customer, first_name="Ada")
    factories.portal_user(customer, first_name="Bo", roles="invoices", sites=[plant1])
    factories.portal_user(factories.customer(), first_name="Stranger")
    login(client, admin.email)
    html = client.get("/company/").get_data(as_text=True)
    assert "Ada" in html and "Bo" in html and "Stranger" not in html
    assert "Plant 1" in html and "Never" in html
    assert "UTC" in html  # Ada's own sign-in time


def test_company_page_needs_the_admin_role(client, acme):
    customer, _, _ = acme
    user = factories.portal_user(customer, roles="invoices")
    login(client, user.email)
    assert client.get("/company/").status_code == 403
    assert (
        "Company"
        not in [
            m
            for m in re.findall(
                r'<nav aria-label="Main".*?</nav>', client.get("/").get_data(as_text=True), re.S
            )
        ][0]
    )


def test_admin_invites_a_colleague_within_own_roles(client, acme, mailbox):
    customer, plant1, _ = acme
    admin = factories.portal_user(customer, roles="invoices,statements,company_admin")
    login(client, admin.email)
    page = client.get("/company/users/new").get_data(as_text=True)
    assert 'value="quotes"' not in page and 'value="invoices"' in page
    response = client.post(
        "/company/users/new",
        data={
            "first_name": "Cy",
            "last_name": "Lee",
            "email": "cy@acme.example",
            "roles": ["invoices"],
            "sites": [str(plant1.id)],
        },
    )
    assert response.status_code == 303
    user = PortalUser.select().join(Contact).where(Contact.email == "cy@acme.example").get()
    assert (user.status, user.role_set, user.site_ids) == ("invited", {"invoices"}, [plant1.id])
    assert user.contact.customer_id == customer.id
    assert mailbox.wait_for(1)[0]["To"] == "cy@acme.example"
    refused = client.post(
        "/company/users/new",
        data={"first_name": "Di", "email": "di@acme.example", "roles": ["quotes"]},
    )
    assert refused.status_code == 422


def test_admin_cannot_invite_another_companys_contact(client, acme, mailbox):
    """B1/B3: nothing is created, and the answer is the one any invitation gets (it does not
    reveal that the address belongs to another customer's contact)."""
    customer, _, _ = acme
    admin = factories.portal_user(customer)
    Contact.create(customer=factories.customer(), email="taken@other.example")
    login(client, admin.email)
    response = client.post(
        "/company/users/new",
        data={
            "first_name": "X",
            "email": "taken@other.example",
            "roles": ["invoices"],
            "all_sites": "y",
        },
    )
    assert response.status_code == 303
    assert "cannot be invited" not in client.get(response.headers["Location"]).text
    assert PortalUser.select().count() == 1
    assert not [m for m in mailbox.messages if m["To"] == "taken@other.example"]


def test_admin_edits_access_and_deactivates(app, client, acme):
    customer, plant1, plant2 = acme
    admin = factories.portal_user(customer)
    colleague = factories.portal_user(customer)
    theirs = app.test_client()
    login(theirs, colleague.email)
    login(client, admin.email)
    assert client.get(f"/company/users/{colleague.public_id}").status_code == 200
    response = client.post(
        f"/company/users/{colleague.public_id}",
        data={"roles": ["invoices"], "sites": [str(plant1.id), str(plant2.id)]},
    )
    assert response.status_code == 303
    stored = PortalUser.get_by_id(colleague.id)
    assert (stored.role_set, sorted(stored.site_ids)) == ({"invoices"}, [plant1.id, plant2.id])
    assert b"Sign out" not in theirs.get("/").data  # narrowed: signed out
    assert client.post(f"/company/users/{colleague.public_id}/deactivate").status_code == 303
    assert PortalUser.get_by_id(colleague.id).status == "disabled"
    client.post(f"/company/users/{colleague.public_id}/reactivate")
    assert PortalUser.get_by_id(colleague.id).status == "active"


def test_admin_approves_and_rejects_pending_registrations(client, acme, mailbox):
    customer, _, _ = acme
    admin = factories.portal_user(customer)
    pending = factories.portal_user(customer, status="pending", password=None, first_name="Pen")
    other = factories.portal_user(customer, status="pending", password=None)
    login(client, admin.email)
    html = client.get("/company/").get_data(as_text=True)
    assert "Waiting for your approval" in html and "Pen" in html
    client.post(f"/company/users/{pending.public_id}/approve")
    client.post(f"/company/users/{other.public_id}/reject")
    assert PortalUser.get_by_id(pending.id).status == "invited"
    assert PortalUser.get_by_id(other.id).status == "disabled"
    assert {m["To"] for m in mailbox.wait_for(2)} == {pending.email, other.email}


def test_other_companys_login_is_404(client, acme, caplog):
    """E2: another company's login id answers 404 on every company route; E7: logged."""
    customer, _, _ = acme
    admin = factories.portal_user(customer)
    stranger = factories.portal_user(factories.customer())
    login(client, admin.email)
    assert client.get(f"/company/users/{stranger.public_id}").status_code == 404
    for action in ("deactivate", "reactivate", "resend", "approve", "reject"):
        assert client.post(f"/company/users/{stranger.public_id}/{action}").status_code == 404
    assert PortalUser.get_by_id(stranger.id).status == "active"
    denied = [r for r in caplog.records if r.getMessage().startswith("access denied")]
    assert len(denied) == 6
    assert (
        denied[0]
        .getMessage()
        .startswith(
            f"access denied: portal user {admin.id} got 404 for company.edit user_id={stranger.id}"
            f" (GET /company/users/{stranger.public_id}) request="
        )
    )


def test_admin_cannot_deactivate_themselves(client, acme):
    customer, _, _ = acme
    admin = factories.portal_user(customer)
    login(client, admin.email)
    response = client.post(f"/company/users/{admin.public_id}/deactivate", follow_redirects=True)
    assert "cannot change your own login" in response.get_data(as_text=True)
    assert PortalUser.get_by_id(admin.id).status == "active"


def test_site_limited_admin_cannot_touch_whole_account_logins(client, acme):
    customer, plant1, plant2 = acme
    admin = factories.portal_user(customer, sites=[plant1])
    wide = factories.portal_user(customer, roles="invoices")
    login(client, admin.email)
    client.post(f"/company/users/{wide.public_id}/deactivate")
    assert PortalUser.get_by_id(wide.id).status == "active"
    response = client.post(
        "/company/users/new",
        data={
            "first_name": "E",
            "email": "e@acme.example",
            "roles": ["invoices"],
            "sites": [str(plant2.id)],
        },
    )
    assert response.status_code == 422
