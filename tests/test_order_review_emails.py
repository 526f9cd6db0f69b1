"""The office's decision on a portal order, emailed (issue 20, services/orders.py): one
order_accepted or order_rejected email to the login that placed the order, naming the
business, with the absolute link to the order; none for a second decision, a refused one, a
placer whose login is disabled, or an order that was not placed in the portal."""

import re

import pytest

from portal.models import PortalUser, SalesOrder
from portal.services import orders, outbox, settings

from . import factories, test_portal_orders
from .conftest import login, staff_login

# The portal-order tests' company, plant, buyer (Pat) and product (fixtures), and checkout.
acme, site_a, buyer, bolt = (
    test_portal_orders.acme,
    test_portal_orders.site_a,
    test_portal_orders.buyer,
    test_portal_orders.bolt,
)


def placed(mailbox, *args, **kwargs):
    """A portal order placed at checkout, the office's new-order email already out of the way."""
    order = test_portal_orders.place(*args, **kwargs)
    outbox.deliver_due()
    mailbox.clear()
    return order


@pytest.fixture
def office(app, client):
    """A business with its own name, and a clerk signed in to the back office."""
    settings.update({"company_name": "Harbor Supply"})
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    return client


def review(client, order, decision, reason=""):
    return client.post(
        f"/staff/orders/{order.id}/review", data={"decision": decision, "reason": reason}
    )


def order_link(message) -> str:
    return re.search(r"http://localhost/orders/\S+", message.get_content()).group(0)


def the_one_email(mailbox, order, subject: str):
    """The decision's one email: to Pat, with this subject and the order's absolute link."""
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@acme.example"
    assert message["Subject"] == subject
    assert order_link(message) == f"http://localhost/orders/{order.public_id}"
    return message


def test_accepting_emails_the_placer_once_with_the_business_name_and_order_link(
    app, office, mailbox, buyer, bolt, site_a
):
    """Pat, who placed the order, gets one email naming Harbor Supply with a link that opens
    the order; a second click is refused and sends nothing; a colleague gets nothing."""
    factories.portal_user(buyer.contact.customer, email="kim@acme.example")
    order = placed(mailbox, buyer, bolt, 2000, site_a, po="PO-88")
    assert review(office, order, "accept").status_code == 303
    subject = f"Harbor Supply accepted your order {order.number}"
    message = the_one_email(mailbox, order, subject)
    text = message.get_content()
    assert "Harbor Supply accepted your order" in text and "PO-88" in text

    review(office, order, "reject", "Changed our mind")
    assert SalesOrder.get_by_id(order.id).status == "accepted"
    outbox.deliver_due()
    assert len(mailbox.messages) == 1

    customer = app.test_client()
    login(customer, "pat@acme.example")
    assert customer.get(order_link(message).removeprefix("http://localhost")).status_code == 200


def test_rejecting_emails_the_reason_and_a_refused_rejection_sends_nothing(
    office, mailbox, buyer, bolt, site_a
):
    """A rejection without a reason is 422 and emails nobody; with one, Pat reads it."""
    order = placed(mailbox, buyer, bolt, 1000, site_a)
    assert review(office, order, "reject").status_code == 422
    outbox.deliver_due()
    assert mailbox.messages == []
    assert review(office, order, "reject", "Discontinued size; call us.").status_code == 303
    subject = f"Harbor Supply could not accept your order {order.number}"
    text = the_one_email(mailbox, order, subject).get_content()
    assert "Why: Discontinued size; call us." in text and "(your PO not given)" in text


def test_a_placer_whose_login_was_disabled_gets_nothing(office, mailbox, buyer, bolt, site_a):
    order = placed(mailbox, buyer, bolt, 1000, site_a)
    PortalUser.update(status="disabled").where(PortalUser.id == buyer.id).execute()
    assert review(office, order, "accept").status_code == 303
    outbox.deliver_due()
    assert mailbox.messages == []


def test_an_order_not_placed_in_the_portal_emails_nobody(app, mailbox, acme, buyer):
    """An ERP order waiting for review has no placer: the decision is recorded, no email."""
    acme.email = "ap@acme.example"
    acme.save()
    order = factories.order(acme, status="submitted")
    orders.review(order, factories.staff(), True)
    assert SalesOrder.get_by_id(order.id).status == "accepted"
    outbox.deliver_due()
    assert mailbox.messages == []
