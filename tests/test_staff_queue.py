"""The requests queue: access requests and pending self-registrations."""

from portal.models import AccessRequest, AuditLog, Contact, PortalUser

from . import factories
from .conftest import staff_login

URL = "/staff/requests/"


def test_approve_an_access_request_invites_the_person(client, mailbox):
    """Approving a request creates the contact under the named customer and invites them."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    customer = factories.customer(account_number="ACME")
    row = AccessRequest.create(
        name="Lee Smith", company="Acme", email="lee@acme.example", account_number="NOPE"
    )
    html = client.get(URL).get_data(as_text=True)
    assert "Lee Smith" in html and "lee@acme.example" in html

    response = client.post(URL + f"access/{row.id}/approve", data={"account_number": "NOPE"})
    assert response.status_code == 422
    assert "No customer has this account number." in response.get_data(as_text=True)

    response = client.post(URL + f"access/{row.id}/approve", data={"account_number": "acme"})
    assert response.status_code == 303
    contact = Contact.get(Contact.email == "lee@acme.example")
    assert contact.customer_id == customer.id
    assert PortalUser.get(PortalUser.contact == contact.id).status == "invited"
    assert AccessRequest.get_by_id(row.id).status == "approved"
    assert any(m["To"] == "lee@acme.example" for m in mailbox.wait_for(1))


def test_reject_an_access_request_and_decide_registrations(client, mailbox):
    """Reject a request with a note; approve one pending registration and reject another."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    row = AccessRequest.create(name="Kim", company="X", email="kim@example.com")
    assert client.post(URL + f"access/{row.id}/reject", data={"note": "Unknown"}).status_code == 303
    assert AccessRequest.get_by_id(row.id).status == "rejected"

    customer = factories.customer()
    first = factories.portal_user(customer, email="one@example.com", status="pending")
    second = factories.portal_user(customer, email="two@example.com", status="pending")
    html = client.get(URL).get_data(as_text=True)
    assert "one@example.com" in html and "two@example.com" in html
    assert client.post(URL + f"registrations/{first.id}/approve").status_code == 303
    assert client.post(URL + f"registrations/{second.id}/reject").status_code == 303
    assert client.post(URL + f"registrations/{second.id}/explode").status_code == 404
    assert PortalUser.get_by_id(first.id).status == "invited"
    assert PortalUser.get_by_id(second.id).status == "disabled"
    actions = {e.action for e in AuditLog.select()}
    assert {"access.request_rejected", "access.registration_approved"} <= actions
    assert "access.registration_rejected" in actions
