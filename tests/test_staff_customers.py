"""Customers, sites, contacts and portal access in the back office."""

import json

import pytest
from playhouse.test_utils import count_queries

from portal.models import AuditLog, Contact, Customer, LoginSession, OutboxMessage, PortalUser, Site

from . import factories
from .conftest import HX, login, staff_login

URL = "/staff/customers/"


@pytest.fixture
def agent(client):
    """Customers are agents' work: no admin needed."""
    user = factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    return user


def test_list_and_active_search_plain_and_htmx(client, agent):
    """STYLE 8: search is a GET form (full page); htmx gets only the results fragment."""
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    factories.customer(name="Globex", account_number="GLX")
    factories.invoice(acme, total_cents=125_000)
    factories.portal_user(acme, email="pat@acme.example", last_name="Zebra")
    factories.site(acme)

    page = client.get(URL)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert "Acme Manufacturing" in html and "Globex" in html
    assert "$1,250.00" in html

    plain = client.get(URL + "?q=acme").get_data(as_text=True)
    assert "Acme Manufacturing" in plain and "Globex" not in plain and "<html" in plain

    fragment = client.get(URL + "?q=zebra", headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in html and 'id="results"' in html
    assert "Acme Manufacturing" in html and "Globex" not in html
    assert "HX-Request" in fragment.headers["Vary"]

    empty = client.get(URL + "?q=nothing-like-this", headers=HX).get_data(as_text=True)
    assert "No customer matches" in empty


def test_list_query_count_does_not_grow_with_rows(client, agent):
    """The list computes its counts and balances in the query: no N+1."""
    for _ in range(3):
        factories.customer()
    with count_queries() as few:
        client.get(URL, headers=HX)
    for _ in range(10):
        c = factories.customer()
        factories.site(c)
        factories.invoice(c)
    with count_queries() as many:
        client.get(URL, headers=HX)
    assert many.count == few.count


def test_create_customer_and_duplicate_account_is_422(client, agent):
    """A new customer is stored and audited; a taken account number is refused, typed kept."""
    data = {
        "account_number": "new-1",
        "name": "New Co",
        "email": "AP@New.example",
        "portal_enabled": "y",
        "auto_invite": "y",
    }
    response = client.post(URL + "new", data=data)
    assert response.status_code == 303
    customer = Customer.get(Customer.account_number == "NEW-1")
    assert response.headers["Location"] == f"/staff/customers/{customer.id}"
    assert customer.email == "ap@new.example" and customer.auto_invite
    assert not customer.allow_self_registration
    assert AuditLog.get(AuditLog.action == "customer.created").actor_label == "agent@example.com"

    response = client.post(URL + "new", data=dict(data, name="Other Name"))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Another customer already has this account number." in html
    assert 'value="Other Name"' in html
    assert Customer.select().count() == 1

    response = client.post(URL + "new", data={"account_number": "", "name": ""})
    assert response.status_code == 422
    assert "Enter the account number." in response.get_data(as_text=True)


def test_edit_customer_account_options_audited(client, agent):
    """Account-class options change through the edit form; the audit keeps old -> new."""
    customer = factories.customer(name="Acme", account_number="ACME")
    response = client.post(
        URL + f"{customer.id}/edit",
        data={"account_number": "ACME", "name": "Acme", "allow_self_registration": "y"},
    )
    assert response.status_code == 303
    customer = Customer.get_by_id(customer.id)
    assert customer.allow_self_registration and not customer.portal_enabled
    changes = json.loads(AuditLog.get(AuditLog.action == "customer.updated").detail)["changes"]
    assert changes["portal_enabled"] == [True, False]
    assert changes["allow_self_registration"] == [False, True]
    html = client.get(URL + str(customer.id)).get_data(as_text=True)
    assert "Portal switched off" in html


def test_detail_shows_sites_and_contacts_with_logins(client, agent):
    """The detail page lists sites and contacts with their login status."""
    customer = factories.customer(name="Acme")
    factories.site(customer, site_code="NORTH", name="North depot")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat", last_name="Lee")
    Contact.create(customer=customer, first_name="No", last_name="Login")
    factories.invoice(customer, number="INV-RECENT")
    html = client.get(URL + str(customer.id)).get_data(as_text=True)
    assert "INV-RECENT" in html
    assert "North depot" in html and "Pat Lee" in html and "No Login" in html
    assert "Active" in html and "No login" in html
    assert client.get(URL + "99999").status_code == 404


def test_detail_shows_balance_quotes_and_orders_and_offers_new_work(client, agent):
    """The open balance is summed in the database; the latest quotes and orders link to
    their pages; a customer with nothing yet still offers "New invoice" and "New quote"."""
    customer = factories.customer(name="Acme")
    factories.invoice(customer, total_cents=10_000)
    factories.invoice(customer, total_cents=5_000, amount_paid_cents=1_000)
    quote = factories.quote(customer, status="accepted", customer_po="PO-1")
    order = factories.order(customer, number="SO-9", customer_po="PO-1", quote=quote)
    html = client.get(URL + str(customer.id)).get_data(as_text=True)
    assert "$140.00" in html
    assert f'href="/staff/quotes/{quote.id}"' in html and quote.number in html
    assert f'href="/staff/orders/{order.id}"' in html and "PO PO-1" in html
    empty = factories.customer(name="Newco")
    html = client.get(URL + str(empty.id)).get_data(as_text=True)
    assert "No invoices yet." in html and "Recent quotes and orders" not in html
    assert f"/staff/invoices/new?customer_id={empty.id}" in html
    assert f"/staff/quotes/new?customer_id={empty.id}" in html


def test_sites_create_edit_and_unique_code(client, agent):
    """Sites are added and edited; a code is unique within the customer."""
    customer = factories.customer()
    response = client.post(
        URL + f"{customer.id}/sites/new", data={"site_code": "n1", "name": "North"}
    )
    assert response.status_code == 303
    site = Site.get(Site.site_code == "N1")
    response = client.post(URL + f"{customer.id}/sites/new", data={"site_code": "N1", "name": "X"})
    assert response.status_code == 422
    assert "already has a site with this code" in response.get_data(as_text=True)
    response = client.post(
        URL + f"sites/{site.id}/edit", data={"site_code": "N1", "name": "North yard"}
    )
    assert response.status_code == 303
    assert Site.get_by_id(site.id).name == "North yard"
    assert AuditLog.select().where(AuditLog.action.startswith("site.")).count() == 2


def test_new_contact_is_auto_invited_when_the_account_class_says_so(client, agent, mailbox):
    """Auto-invite on contact creation: the contact gets a login and an invitation email."""
    customer = factories.customer(auto_invite=True)
    response = client.post(
        URL + f"{customer.id}/contacts/new",
        data={"first_name": "Sam", "last_name": "Doe", "email": "Sam@Example.com", "site_id": "0"},
    )
    assert response.status_code == 303
    contact = Contact.get(Contact.email == "sam@example.com")
    user = PortalUser.get(PortalUser.contact == contact.id)
    assert user.status == "invited"
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "sam@example.com"

    plain = factories.customer(auto_invite=False)
    client.post(
        URL + f"{plain.id}/contacts/new", data={"first_name": "Kim", "email": "kim@example.com"}
    )
    kim = Contact.get(Contact.email == "kim@example.com")
    assert not PortalUser.select().where(PortalUser.contact == kim.id).exists()


def test_contact_validation_and_other_customers_site(client, agent):
    """A contact needs a name or email; an email is unique; a site must be the customer's."""
    customer = factories.customer()
    other_site = factories.site(factories.customer())
    factories.portal_user(email="taken@example.com")
    url = URL + f"{customer.id}/contacts/new"
    response = client.post(url, data={"phone": "123"})
    assert response.status_code == 422 and "Enter a name or an email." in response.text
    response = client.post(url, data={"first_name": "A", "email": "taken@example.com"})
    assert (
        response.status_code == 422 and "Another contact already uses this email." in response.text
    )
    response = client.post(url, data={"first_name": "A", "site_id": str(other_site.id)})
    assert response.status_code == 422
    assert Contact.select().where(Contact.customer == customer.id).count() == 0


def test_portal_access_invite_scope_resend_and_deactivate(client, agent, mailbox):
    """Per contact: invite with roles and sites, change scope, resend, deactivate (sessions end)."""
    customer = factories.customer()
    north = factories.site(customer)
    contact = Contact.create(customer=customer, email="lee@example.com", first_name="Lee")
    url = URL + f"contacts/{contact.id}/access"

    page = client.get(url).get_data(as_text=True)
    assert "Send invitation" in page

    response = client.post(url, data={"roles": [], "scope": "all"})
    assert response.status_code == 422 and "Choose at least one role." in response.text

    response = client.post(url, data={"roles": ["invoices", "cases"], "scope": "all"})
    assert response.status_code == 303
    user = PortalUser.get(PortalUser.contact == contact.id)
    assert user.status == "invited" and user.role_set == {"invoices", "cases"}
    mailbox.wait_for(1)

    response = client.post(
        url, data={"roles": ["invoices"], "scope": "sites", "site_ids": [str(north.id)]}
    )
    assert response.status_code == 303
    user = PortalUser.get_by_id(user.id)
    assert user.role_set == {"invoices"} and user.site_ids == [north.id]

    assert client.post(url + "/resend").status_code == 303
    mailbox.wait_for(2)

    assert client.post(url + "/deactivate").status_code == 303
    assert PortalUser.get_by_id(user.id).status == "disabled"
    assert client.post(url + "/explode").status_code == 404
    actions = {e.action for e in AuditLog.select()}
    assert {"access.invited", "access.changed", "access.invitation_resent"} <= actions
    assert "access.deactivated" in actions


def test_deactivating_an_active_login_ends_its_sessions(client, agent, make_app):
    """Deactivate: the customer's next request is signed out."""
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@example.com")
    other = client.application.test_client()
    login(other, "pat@example.com")
    assert LoginSession.select().where(LoginSession.portal_user == user.id).count() == 1
    client.post(URL + f"contacts/{user.contact_id}/access/deactivate")
    assert LoginSession.get(LoginSession.portal_user == user.id).revoked_at is not None


def test_customer_pages_need_staff(client):
    """E5: a portal user cannot open back-office customer pages or partials."""
    factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    for headers in ({}, HX):
        response = client.get(URL, headers=headers)
        assert response.status_code in (302, 204)
    assert client.post(URL + "new", data={"account_number": "X", "name": "X"}).status_code == 302
    assert Customer.select().where(Customer.account_number == "X").count() == 0
    assert OutboxMessage.select().count() == 0
