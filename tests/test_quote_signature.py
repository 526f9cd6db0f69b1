"""Quote acceptance as a signature: typed full name, terms ticked, PO; who, when, from which
address and a digest of the lines and totals, on both sides; a quote changed after it was
published cannot be accepted as it was; the ERP's order links back (issue 20). Also RFQ
withdrawal until quoted, and the order import linking a portal order."""

import io
import re

import pytest

from portal.models import (
    AuditLog,
    Quote,
    QuoteLine,
    QuoteSignature,
    Rfq,
    SalesOrder,
    WebOrder,
)
from portal.services import cart, importer, orders, quotes

from . import factories
from .conftest import login, staff_login


@pytest.fixture
def acme(app):
    return factories.customer(name="Acme Manufacturing", account_number="ACME")


@pytest.fixture
def buyer(acme):
    return factories.portal_user(acme, email="pat@acme.example", first_name="Pat")


def _form(client, quote, **fields):
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    digest = re.search(r'name="digest" type="hidden" value="([0-9a-f]{64})"', page).group(1)
    return {"full_name": "Pat Buyer", "terms": "y", "digest": digest, **fields}


def _published(staff, customer):
    """A quote the office drafted and published through the service (digest stored)."""
    product = factories.product(item_code="BOLT-10", price_cents=1000)
    quote = quotes.create_quote(
        None,
        staff,
        [quotes.Line(product, "Hex bolt", 4000, 1000), quotes.Line(None, "Fitting", 1000, 5000)],
        quotes.today().replace(year=quotes.today().year + 1),
        customer=customer,
    )
    quotes.publish(quote, staff)
    return Quote.get_by_id(quote.id)


def test_signing_records_who_when_where_and_the_digest_on_both_sides(client, acme, buyer):
    sam = factories.staff(email="sam@example.com")
    quote = _published(sam, acme)
    assert quote.published_digest == quotes.digest(quote)
    login(client, "pat@acme.example")
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "Your full name" in page and "I accept this quote" in page
    # No name, no tick: a 422 next to the fields, nothing decided.
    unsigned = client.post(
        f"/quotes/{quote.public_id}/accept", data=_form(client, quote, full_name="", terms="")
    )
    body = unsigned.get_data(as_text=True)
    assert unsigned.status_code == 422
    assert "Type your full name to sign." in body and "Tick that you accept" in body
    assert Quote.get_by_id(quote.id).status == "published"
    signed = client.post(
        f"/quotes/{quote.public_id}/accept",
        data=_form(client, quote, full_name="  Pat   Buyer ", customer_po="PO-9"),
        headers={"User-Agent": "TestBrowser/1"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert signed.status_code == 303
    record = QuoteSignature.get(QuoteSignature.quote == quote.id)
    assert record.full_name == "Pat Buyer" and record.portal_user_id == buyer.id
    assert record.customer_po == "PO-9" and record.ip == "203.0.113.7"
    assert record.user_agent == "TestBrowser/1" and record.terms_accepted
    assert record.digest == quote.published_digest and record.total_cents == 9000
    assert AuditLog.get(AuditLog.action == "quote.accepted").detail  # the audit names it
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "Signed acceptance" in page and "Pat Buyer" in page and record.digest in page
    assert "203.0.113.7" in page
    client.post("/logout")
    staff_login(client, "sam@example.com")
    page = client.get(f"/staff/quotes/{quote.id}").get_data(as_text=True)
    assert "Signed acceptance" in page and record.digest in page and "no longer match" not in page


def test_a_quote_changed_after_publishing_cannot_be_accepted_as_it_was(client, acme, buyer):
    sam = factories.staff()
    quote = _published(sam, acme)
    login(client, "pat@acme.example")
    form = _form(client, quote)
    # Someone changes a price behind the published quote (the page's digest is now stale
    # and the quote no longer matches what was published).
    QuoteLine.update(unit_price_cents=900, amount_cents=3600).where(
        (QuoteLine.quote == quote.id) & (QuoteLine.position == 1)
    ).execute()
    refused = client.post(f"/quotes/{quote.public_id}/accept", data=form, follow_redirects=True)
    assert "changed after we sent it" in refused.get_data(as_text=True)
    assert Quote.get_by_id(quote.id).status == "published"
    assert QuoteSignature.select().count() == 0
    # Even a fresh page cannot accept it: it differs from what was published.
    again = client.post(
        f"/quotes/{quote.public_id}/accept", data=_form(client, quote), follow_redirects=True
    )
    assert "changed after we sent it" in again.get_data(as_text=True)
    assert Quote.get_by_id(quote.id).status == "published"


def test_a_page_older_than_the_quote_cannot_sign_it(client, acme, buyer):
    """A quote without a published digest (published before signatures) is still checked
    against what the customer's page showed."""
    quote = factories.quote(acme)
    login(client, "pat@acme.example")
    stale = _form(client, quote)
    Quote.update(total_cents=1).where(Quote.id == quote.id).execute()
    answer = client.post(f"/quotes/{quote.public_id}/accept", data=stale, follow_redirects=True)
    assert "changed while you were reading it" in answer.get_data(as_text=True)
    assert Quote.get_by_id(quote.id).status == "published"
    assert (
        client.post(f"/quotes/{quote.public_id}/accept", data=_form(client, quote)).status_code
        == 303
    )
    assert Quote.get_by_id(quote.id).status == "accepted"


def test_the_accepted_quote_links_to_the_order_the_import_made(client, acme, buyer):
    quote = factories.quote(acme)
    login(client, "pat@acme.example")
    client.post(f"/quotes/{quote.public_id}/accept", data=_form(client, quote))
    assert "We will confirm the order" in client.get(f"/quotes/{quote.public_id}").text
    result = importer.import_csv(
        "orders",
        io.StringIO(
            "number,account_number,order_date,quote_number,status\n"
            f"SO-5001,ACME,2026-01-05,{quote.number},open\n"
        ),
    )
    assert result.ok, result.errors
    order = SalesOrder.get(SalesOrder.number == "SO-5001")
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "We will confirm the order" not in page
    assert f'href="/orders/{order.public_id}"' in page and "SO-5001" in page


def test_an_rfq_can_be_withdrawn_until_it_is_quoted(client, acme, buyer):
    sam = factories.staff()
    waiting = factories.rfq(acme, user=buyer, lines=[(None, "Brackets", 1000)])
    quoted = factories.rfq(acme, user=buyer, status="quoted")
    login(client, "pat@acme.example")
    assert "Withdraw this request" in client.get(f"/quotes/requests/{waiting.public_id}").text
    assert "Withdraw" not in client.get(f"/quotes/requests/{quoted.public_id}").text
    assert client.post(f"/quotes/requests/{waiting.public_id}/withdraw").status_code == 303
    assert Rfq.get_by_id(waiting.id).status == "withdrawn"
    page = client.get(f"/quotes/requests/{waiting.public_id}").get_data(as_text=True)
    assert "Withdrawn" in page and "You withdrew this request" in page
    late = client.post(f"/quotes/requests/{quoted.public_id}/withdraw", follow_redirects=True)
    assert "can no longer be withdrawn" in late.get_data(as_text=True)
    assert Rfq.get_by_id(quoted.id).status == "quoted"
    # A quote drafted before the withdrawal cannot be published for it any more.
    draft = quotes.create_quote(
        Rfq.get_by_id(waiting.id),
        sam,
        [quotes.Line(None, "Brackets", 1000, 500)],
        quotes.today(),
    )
    with pytest.raises(quotes.QuoteError, match="withdrew"):
        quotes.publish(draft, sam)
    assert Rfq.get_by_id(waiting.id).status == "withdrawn"


def test_the_orders_import_links_the_erp_order_to_the_portal_order(client, acme, buyer):
    """The customer then sees one order: the portal's row renamed to the ERP's number."""
    site = factories.site(acme, site_code="A")
    product = factories.product(item_code="BOLT-10", available_quantity=10)
    cart.add(buyer, product.id, 2000)
    placed = cart.checkout(buyer, site_id=site.id, customer_po="PO-1")
    orders.review(placed, factories.staff(), True)
    web = WebOrder.get(WebOrder.order == placed.id)
    text = (
        "number,account_number,site_code,order_date,status,customer_po,portal_order\n"
        f"SO-9001,ACME,A,2026-01-05,open,PO-1,{web.number}\n"
    )
    result = importer.import_csv("orders", io.StringIO(text))
    assert result.ok, result.errors
    assert SalesOrder.select().count() == 1
    linked = SalesOrder.get_by_id(placed.id)
    assert (linked.number, linked.status) == ("SO-9001", "open")
    assert WebOrder.get_by_id(web.id).linked_at is not None
    login(client, "pat@acme.example")
    listed = client.get("/orders/").get_data(as_text=True)
    assert "SO-9001" in listed and web.number not in listed
    page = client.get(f"/orders/{linked.public_id}").get_data(as_text=True)
    assert "SO-9001" in page and web.number in page  # the portal number stays on the page
    # Importing the same file again changes nothing; a wrong account's claim is refused.
    assert importer.import_csv("orders", io.StringIO(text)).ok
    assert SalesOrder.select().count() == 1
    other = factories.customer(account_number="OTHER")
    claim = (
        "number,account_number,order_date,portal_order\n"
        f"SO-9002,{other.account_number},2026-01-05,{web.number}\n"
        "SO-9003,ACME,2026-01-05,W-999999\n"
    )
    refused = importer.import_csv("orders", io.StringIO(claim))
    assert not refused.ok
    assert "not an order of account OTHER" in str(refused.errors)
    assert "unknown portal_order W-999999" in str(refused.errors)


def test_reorder_from_a_quote_at_todays_prices(client, acme, buyer):
    """A past quote's catalog lines go into the cart at today's price (the change marked);
    a login without the orders role cannot (404)."""
    bolt = factories.product(item_code="BOLT-10", price_cents=1200, available_quantity=100)
    quote = factories.quote(
        acme, status="accepted", lines=[(bolt, "Hex bolt", 5000, 1000), (None, "Jig", 1000, 9000)]
    )
    login(client, "pat@acme.example")
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "Order these items at today" in page
    assert client.post(f"/quotes/{quote.public_id}/reorder").status_code == 303
    items = cart.view(buyer).items
    assert [(i.product.item_code, i.quantity_milli, i.price_cents) for i in items] == [
        ("BOLT-10", 5000, 1200)
    ]
    assert items[0].was_price_cents == 1000
    client.post("/logout")
    factories.portal_user(acme, email="quinn@acme.example", roles="quotes")
    login(client, "quinn@acme.example")
    assert "Order these items" not in client.get(f"/quotes/{quote.public_id}").text
    assert client.post(f"/quotes/{quote.public_id}/reorder").status_code == 404
