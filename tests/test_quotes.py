"""Requests for quote and quotes: customers ask, staff price and publish, customers decide."""

import re
from datetime import date, timedelta

import pytest

from portal.models import AuditLog, OutboxMessage, Quote, QuoteLine, Rfq, RfqLine
from portal.services import quotes, settings

from . import factories
from .conftest import HX, login, staff_login


@pytest.fixture
def acme():
    return factories.customer(name="Acme Manufacturing", email="ap@acme.example")


@pytest.fixture
def buyer(acme):
    return factories.portal_user(acme, email="pat@acme.example", first_name="Pat")


def rfq_data(**extra):
    data = {
        "needed_by": "",
        "site_id": "",
        "notes": "Deliver to dock B.",
        "lines-0-product": "",
        "lines-0-description": "Laser-cut bracket, 3 mm steel",
        "lines-0-quantity": "250",
    }
    data.update(extra)
    return data


# --- customer: requests for quote -------------------------------------------------------


def signing(client, quote, **fields) -> dict:
    """The accept form as the quote page fills it: a typed name, the terms ticked, the digest
    of the quote as shown (issue 20: accepting is a signature)."""
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    digest = re.search(r'name="digest" type="hidden" value="([0-9a-f]{64})"', page).group(1)
    return {"full_name": "Pat Buyer", "terms": "y", "digest": digest, **fields}


def test_customer_sends_an_rfq_with_catalog_and_free_text_lines(client, buyer):
    """Blank rows are skipped; a catalog line keeps its product; the RFQ is audited."""
    bolt = factories.product(item_code="BOLT-M10", description="Hex bolt M10")
    login(client, "pat@acme.example")
    form = client.get("/quotes/requests/new").get_data(as_text=True)
    assert form.count('name="lines-4-quantity"') == 1  # five rows without JavaScript
    assert "BOLT-M10 · Hex bolt M10" in form
    needed = (date.today() + timedelta(days=10)).isoformat()
    response = client.post(
        "/quotes/requests/new",
        data=rfq_data(
            needed_by=needed,
            **{"lines-2-product": str(bolt.id), "lines-2-quantity": "2.5"},
        ),
    )
    assert response.status_code == 303
    rfq = Rfq.get()
    assert response.headers["Location"] == f"/quotes/requests/{rfq.public_id}"
    assert rfq.status == "submitted" and rfq.customer_id == buyer.contact.customer_id
    assert rfq.portal_user_id == buyer.id and rfq.needed_by.isoformat() == needed
    lines = [(ln.product_id, ln.description, ln.quantity_milli) for ln in rfq.lines]
    assert lines == [
        (None, "Laser-cut bracket, 3 mm steel", 250_000),
        (bolt.id, "Hex bolt M10", 2500),
    ]
    assert AuditLog.get(AuditLog.action == "rfq.submitted").object_id == str(rfq.id)
    page = client.get(f"/quotes/requests/{rfq.public_id}").get_data(as_text=True)
    assert "Laser-cut bracket" in page and "We are working on it" in page
    listing = client.get("/quotes/?tab=requests").get_data(as_text=True)
    assert rfq.number in listing and '<td class="num">2</td>' in listing  # two items


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"lines-0-description": "", "lines-0-quantity": ""}, "Add at least one item"),
        ({"lines-0-quantity": ""}, "Enter a quantity."),
        ({"lines-0-quantity": "-3"}, "Enter a quantity like 2 or 2.5."),
        ({"lines-1-quantity": "4"}, "Choose a product or describe the item."),
        ({"lines-0-product": "999999"}, "Not a valid choice"),
        ({"needed_by": "2001-01-01"}, "Choose a date from today on."),
        ({"needed_by": "next week"}, "Not a valid date value."),
    ],
)
def test_bad_rfq_is_422_next_to_the_field_keeps_input_and_writes_nothing(
    client, buyer, extra, message
):
    """Validation: 422, the message in the form, typed values kept, no RFQ or line stored."""
    login(client, "pat@acme.example")
    response = client.post("/quotes/requests/new", data=rfq_data(**extra))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body
    assert 'class="error"' in body
    assert "Deliver to dock B." in body  # what was typed stays
    assert Rfq.select().count() == 0 and RfqLine.select().count() == 0


def test_rfq_form_errors_come_back_as_the_form_fragment_for_htmx(client, buyer):
    """STYLE 12: an htmx post with an error gets only the form, not a page."""
    login(client, "pat@acme.example")
    response = client.post(
        "/quotes/requests/new", data=rfq_data(**{"lines-0-quantity": "x"}), headers=HX
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True).lstrip()
    assert body.startswith('<form method="post" action="/quotes/requests/new" id="rfq-form"')
    assert "<html" not in body


def test_more_rows_without_javascript_keeps_what_was_typed(client, buyer):
    """The no-JS "More rows" button returns the form longer, with the typed rows, saving nothing."""
    login(client, "pat@acme.example")
    response = client.post("/quotes/requests/new", data=rfq_data(action="more"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'name="lines-7-quantity"' in body and "Laser-cut bracket" in body
    assert Rfq.select().count() == 0


def test_site_limited_login_must_ask_for_one_of_its_sites(client, acme):
    """E4: a site-limited login cannot file an RFQ for a site outside its scope (or none)."""
    plant1 = factories.site(acme, name="Plant 1")
    plant2 = factories.site(acme, name="Plant 2")
    factories.portal_user(acme, email="p1@acme.example", sites=[plant1])
    login(client, "p1@acme.example")
    form = client.get("/quotes/requests/new").get_data(as_text=True)
    assert "Plant 1" in form and "Plant 2" not in form
    assert (
        client.post("/quotes/requests/new", data=rfq_data(site_id=str(plant2.id))).status_code
        == 422
    )
    assert client.post("/quotes/requests/new", data=rfq_data(site_id="")).status_code == 422
    assert Rfq.select().count() == 0
    assert (
        client.post("/quotes/requests/new", data=rfq_data(site_id=str(plant1.id))).status_code
        == 303
    )
    assert Rfq.get().site_id == plant1.id


def test_extra_fields_cannot_set_the_company_or_status(client, buyer):
    """E4: customer_id, status and portal_user in the post are ignored."""
    other = factories.customer()
    login(client, "pat@acme.example")
    data = rfq_data(customer=str(other.id), customer_id=str(other.id), status="quoted")
    assert client.post("/quotes/requests/new", data=data).status_code == 303
    rfq = Rfq.get()
    assert rfq.customer_id == buyer.contact.customer_id and rfq.status == "submitted"


# --- customer: quotes -------------------------------------------------------------------


def test_drafts_are_never_shown_to_customers(client, acme, buyer):
    """A draft is not in the list and its page answers 404; published, decided and expired
    quotes are listed with their status."""
    draft = factories.quote(acme, status="draft")
    published = factories.quote(acme)
    accepted = factories.quote(acme, status="accepted")
    expired = factories.quote(acme, valid_until=date.today() - timedelta(days=1))
    login(client, "pat@acme.example")
    listing = client.get("/quotes/").get_data(as_text=True)
    assert draft.number not in listing
    for quote in (published, accepted, expired):
        assert quote.number in listing
    assert client.get(f"/quotes/{draft.public_id}").status_code == 404
    assert client.post(f"/quotes/{draft.public_id}/accept").status_code == 404
    waiting = client.get("/quotes/?status=published").get_data(as_text=True)
    assert published.number in waiting and expired.number not in waiting
    assert accepted.number not in waiting
    lapsed = client.get("/quotes/?status=expired").get_data(as_text=True)
    assert expired.number in lapsed and published.number not in lapsed


def test_quote_page_shows_lines_total_and_validity(client, acme, buyer):
    """Lines with quantities and prices, the total and the last valid day."""
    bolt = factories.product(item_code="BOLT-M10", description="Hex bolt M10", unit="box")
    quote = factories.quote(
        acme,
        lines=[(bolt, "Hex bolt M10", 3000, 1950), (None, "Fitting (hours)", 1500, 9500)],
        valid_until=date(2099, 1, 31),
        notes="Lead time two weeks.",
    )
    login(client, "pat@acme.example")
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "BOLT-M10" in page and "Fitting (hours)" in page
    assert "$58.50" in page and "$142.50" in page and "$201.00" in page
    assert "Jan 31, 2099" in page and "Lead time two weeks." in page
    assert "Sign and accept" in page and "Decline quote" in page


def test_accept_records_who_and_when_audits_and_emails_the_office(client, acme, buyer, mailbox):
    """Accepting is a POST; decided_by/at are stored, the office address gets an email."""
    settings.save({"contact_email": "sales@northwind.example"})
    office = "sales@northwind.example"
    quote = factories.quote(acme)
    login(client, "pat@acme.example")
    mailbox.clear()
    assert client.get(f"/quotes/{quote.public_id}/accept").status_code == 405
    response = client.post(f"/quotes/{quote.public_id}/accept", data=signing(client, quote))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/quotes/{quote.public_id}"
    stored = Quote.get_by_id(quote.id)
    assert stored.status == "accepted"
    assert stored.decided_by_id == buyer.id and stored.decided_at is not None
    assert AuditLog.get(AuditLog.action == "quote.accepted").object_id == str(quote.id)
    (message,) = mailbox.wait_for(1)
    assert message["To"] == office
    assert quote.number in message["Subject"] and "accepted" in message["Subject"]
    assert "pat@acme.example" in message.get_content()
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "You accepted this quote" in page and "Sign and accept" not in page


def test_accept_with_a_po_number_passes_it_to_the_office(client, acme, buyer, mailbox):
    """The PO number typed when accepting is stored, shown on both sides and in the office's
    email; a PO number that is too long is a 422 next to the field and decides nothing."""
    settings.save({"contact_email": "sales@northwind.example"})
    quote = factories.quote(acme)
    login(client, "pat@acme.example")
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert 'name="customer_po"' in page and "Your PO number (optional)" in page
    mailbox.clear()
    response = client.post(
        f"/quotes/{quote.public_id}/accept", data=signing(client, quote, customer_po="x" * 51)
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Keep the PO number to 50 characters." in body and 'value="' + "x" * 51 in body
    assert Quote.get_by_id(quote.id).status == "published"
    response = client.post(
        f"/quotes/{quote.public_id}/accept", data=signing(client, quote, customer_po=" PO  4471 ")
    )
    assert response.status_code == 303
    stored = Quote.get_by_id(quote.id)
    assert (stored.status, stored.customer_po) == ("accepted", "PO 4471")
    (message,) = mailbox.wait_for(1)
    assert "Their PO number: PO 4471" in message.get_content()
    assert "PO 4471" in client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    client.post("/logout")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    assert "PO 4471" in client.get(f"/staff/quotes/{quote.id}").get_data(as_text=True)


def test_double_click_or_second_decision_changes_nothing(client, acme, buyer):
    """A second accept (double click) or a decline after accepting keeps the first decision
    and sends no second email."""
    quote = factories.quote(acme)
    login(client, "pat@acme.example")
    form = signing(client, quote)
    assert client.post(f"/quotes/{quote.public_id}/accept", data=form).status_code == 303
    first = Quote.get_by_id(quote.id).decided_at
    again = client.post(f"/quotes/{quote.public_id}/accept", data=form, follow_redirects=True)
    assert "already accepted" in again.get_data(as_text=True)
    response = client.post(f"/quotes/{quote.public_id}/decline", data={"reason": "Changed mind"})
    assert response.status_code == 303
    stored = Quote.get_by_id(quote.id)
    assert stored.status == "accepted" and stored.decided_at == first
    assert stored.decline_reason == ""
    assert OutboxMessage.select().where(OutboxMessage.kind.startswith("quote_")).count() == 1


def test_expired_quote_cannot_be_accepted(client, acme, buyer):
    """Past valid_until a published quote reads "Expired" and accept/decline change nothing."""
    quote = factories.quote(acme, valid_until=date.today() - timedelta(days=1))
    login(client, "pat@acme.example")
    page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert "Expired" in page and "Accept quote" not in page
    answer = client.post(f"/quotes/{quote.public_id}/accept", follow_redirects=True)
    assert "expired" in answer.get_data(as_text=True)
    client.post(f"/quotes/{quote.public_id}/decline", data={"reason": "Too late"})
    stored = Quote.get_by_id(quote.id)
    assert stored.status == "published" and stored.decided_at is None
    assert quotes.status_of(stored) == "expired"


def test_a_quote_valid_until_today_can_still_be_accepted(client, acme, buyer):
    """valid_until is the last day it can be accepted (inclusive)."""
    quote = factories.quote(acme, valid_until=date.today())
    login(client, "pat@acme.example")
    client.post(f"/quotes/{quote.public_id}/accept", data=signing(client, quote))
    assert Quote.get_by_id(quote.id).status == "accepted"


def test_decline_needs_a_reason_and_stores_it(client, acme, buyer, mailbox):
    """Decline without a reason: 422 next to the field; with one: stored, audited, emailed."""
    quote = factories.quote(acme)
    login(client, "pat@acme.example")
    response = client.post(f"/quotes/{quote.public_id}/decline", data={"reason": "  "})
    assert response.status_code == 422
    assert "Tell us briefly why." in response.get_data(as_text=True)
    assert Quote.get_by_id(quote.id).status == "published"
    fragment = client.post(f"/quotes/{quote.public_id}/decline", data={"reason": ""}, headers=HX)
    assert fragment.status_code == 422
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="decide">')
    mailbox.clear()
    response = client.post(
        f"/quotes/{quote.public_id}/decline", data={"reason": "Lead time too long"}
    )
    assert response.status_code == 303
    stored = Quote.get_by_id(quote.id)
    assert stored.status == "declined" and stored.decline_reason == "Lead time too long"
    assert stored.decided_by_id == buyer.id
    (message,) = mailbox.wait_for(1)
    assert "declined" in message["Subject"] and "Lead time too long" in message.get_content()


def test_other_company_and_out_of_scope_site_answer_404(client, acme, buyer):
    """E2: another company's quote or RFQ, or one of a site outside the login's scope, is 404
    on the page and on every action; nothing is decided. A login without `quotes` gets 403."""
    other = factories.customer()
    theirs = factories.quote(other)
    their_rfq = factories.rfq(other, lines=[(None, "Secret part", 1000)])
    plant1, plant2 = factories.site(acme, name="Plant 1"), factories.site(acme, name="Plant 2")
    plant2_quote = factories.quote(acme, site=plant2)
    plant2_rfq = factories.rfq(acme, site=plant2, lines=[(None, "Valve", 1000)])
    factories.portal_user(acme, email="p1@acme.example", sites=[plant1])
    factories.portal_user(acme, email="billing@acme.example", roles="invoices")

    login(client, "pat@acme.example")
    assert client.get(f"/quotes/{plant2_quote.public_id}").status_code == 200
    assert client.get(f"/quotes/requests/{plant2_rfq.public_id}").status_code == 200
    assert client.get(f"/quotes/{theirs.public_id}").status_code == 404
    assert client.get(f"/quotes/requests/{their_rfq.public_id}").status_code == 404
    assert client.post(f"/quotes/{theirs.public_id}/accept").status_code == 404
    assert (
        client.post(f"/quotes/{theirs.public_id}/decline", data={"reason": "x"}).status_code == 404
    )
    assert theirs.number not in client.get("/quotes/").get_data(as_text=True)

    client.post("/logout")
    login(client, "p1@acme.example")
    assert client.get(f"/quotes/{plant2_quote.public_id}").status_code == 404
    assert client.post(f"/quotes/{plant2_quote.public_id}/accept").status_code == 404
    assert client.get(f"/quotes/requests/{plant2_rfq.public_id}").status_code == 404
    assert plant2_quote.number not in client.get("/quotes/").get_data(as_text=True)
    assert plant2_rfq.number not in client.get("/quotes/?tab=requests").get_data(as_text=True)

    client.post("/logout")
    login(client, "billing@acme.example")
    assert client.get("/quotes/").status_code == 403
    assert client.post(f"/quotes/{plant2_quote.public_id}/accept").status_code == 403
    assert Quote.select().where(Quote.status != "published").count() == 0


def test_accept_needs_the_csrf_token(make_app, mailbox):
    """D1: with CSRF on, an accept without the token is refused and decides nothing."""
    from portal.db import db

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.connect(reuse_if_open=True)
        acme = factories.customer()
        factories.portal_user(acme, email="pat@acme.example")
        quote = factories.quote(acme)
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        data = {"email": "pat@acme.example", "password": factories.PASSWORD, "csrf_token": token}
        assert client.post("/login", data=data).status_code == 303
        assert client.post(f"/quotes/{quote.public_id}/accept").status_code == 400
        assert Quote.get_by_id(quote.id).status == "published"
        page = client.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        response = client.post(
            f"/quotes/{quote.public_id}/accept",
            data=signing(client, quote, csrf_token=token),
        )
        assert response.status_code == 303
        assert Quote.get_by_id(quote.id).status == "accepted"
        db.close()


# --- back office ------------------------------------------------------------------------


@pytest.fixture
def priced_rfq(acme, buyer):
    """An RFQ for a product with a customer price, one without, and a free-text line."""
    from portal.models import CustomerPrice

    bracket = factories.product(item_code="BRKT-200", description="Bracket", price_cents=1290)
    bolt = factories.product(item_code="BOLT-M10", description="Hex bolt", price_cents=1950)
    CustomerPrice.create(customer=acme, product=bracket, price_cents=1250)
    return factories.rfq(
        acme,
        user=buyer,
        lines=[
            (bracket, "Bracket", 400_000),
            (bolt, "Hex bolt", 30_000),
            (None, "Custom jig", 1000),
        ],
        notes="For the new press line.",
    )


def test_staff_queue_lists_submitted_rfqs_first(client, acme):
    """The queue defaults to RFQs waiting for a quote, oldest first; "all" shows submitted
    before quoted."""
    from portal.db import utcnow

    old = factories.rfq(acme, status="quoted", lines=[(None, "Old", 1000)])
    waiting = factories.rfq(acme, lines=[(None, "New", 1000)])
    longest = factories.rfq(acme, created_at=utcnow() - timedelta(days=3))
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    queue = client.get("/staff/quotes/").get_data(as_text=True)
    assert waiting.number in queue and old.number not in queue
    assert queue.index(longest.number) < queue.index(waiting.number)  # oldest waiting first
    everything = client.get("/staff/quotes/?status=all").get_data(as_text=True)
    assert everything.index(waiting.number) < everything.index(old.number)


def test_create_quote_form_is_prefilled_with_customer_prices(client, priced_rfq):
    """Lines come from the RFQ; unit price is the customer's price, else the catalog price."""
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    page = client.get(f"/staff/quotes/rfqs/{priced_rfq.id}/quote").get_data(as_text=True)
    assert 'value="BRKT-200"' in page and 'value="12.50"' in page  # customer price
    assert 'value="BOLT-M10"' in page and 'value="19.50"' in page  # catalog price
    assert 'value="Custom jig"' in page and 'value="400"' in page
    # The free-text line has no price yet: staff must type one (no accidental $0.00).
    assert 'name="lines-2-unit_price" type="text" value=""' in page


def staff_quote_data(**extra):
    data = {
        "valid_until": (date.today() + timedelta(days=30)).isoformat(),
        "notes": "Lead time two weeks.",
        "lines-0-item_code": "BRKT-200",
        "lines-0-description": "Bracket",
        "lines-0-quantity": "400",
        "lines-0-unit_price": "12.50",
        "lines-1-item_code": "",
        "lines-1-description": "Custom jig",
        "lines-1-quantity": "1",
        "lines-1-unit_price": "380.00",
        "lines-2-item_code": "",
        "lines-2-description": "",
        "lines-2-quantity": "",
        "lines-2-unit_price": "",
    }
    data.update(extra)
    return data


def test_staff_create_edit_publish_flow_emails_the_requester(client, priced_rfq, buyer, mailbox):
    """Draft (invisible to the customer) -> edit -> publish: the requester gets the
    quote_published email at the SMTP server, the RFQ is quoted, the customer sees it."""
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    response = client.post(f"/staff/quotes/rfqs/{priced_rfq.id}/quote", data=staff_quote_data())
    assert response.status_code == 303
    quote = Quote.get()
    assert response.headers["Location"] == f"/staff/quotes/{quote.id}"
    assert quote.status == "draft" and quote.rfq_id == priced_rfq.id
    assert quote.total_cents == 400 * 1250 + 38000
    assert [ln.product.item_code if ln.product else None for ln in quote.lines] == [
        "BRKT-200",
        None,
    ]
    assert Rfq.get_by_id(priced_rfq.id).status == "submitted"

    edit = staff_quote_data(**{"lines-1-unit_price": "400.00"})
    assert client.post(f"/staff/quotes/{quote.id}/edit", data=edit).status_code == 303
    assert Quote.get_by_id(quote.id).total_cents == 400 * 1250 + 40000
    assert QuoteLine.select().where(QuoteLine.quote == quote).count() == 2

    mailbox.clear()
    assert client.post(f"/staff/quotes/{quote.id}/publish").status_code == 303
    published = Quote.get_by_id(quote.id)
    assert published.status == "published" and published.published_at is not None
    assert Rfq.get_by_id(priced_rfq.id).status == "quoted"
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@acme.example"
    assert message["Subject"] == f"Your quote {quote.number} is ready"
    text = message.get_content()
    assert "Hello Pat," in text and "$5,400.00" in text and f"/quotes/{quote.public_id}" in text

    # Published quotes are no longer editable, and a second publish changes nothing.
    assert client.get(f"/staff/quotes/{quote.id}/edit").status_code == 303
    client.post(f"/staff/quotes/{quote.id}/publish")
    assert len(mailbox.messages) == 1

    client.post("/staff/logout")
    login(client, "pat@acme.example")
    assert quote.number in client.get("/quotes/").get_data(as_text=True)
    assert client.get(f"/quotes/{quote.public_id}").status_code == 200


def test_draft_is_invisible_until_published(client, priced_rfq, buyer):
    """A staff draft for the customer's RFQ answers 404 to the customer."""
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    client.post(f"/staff/quotes/rfqs/{priced_rfq.id}/quote", data=staff_quote_data())
    quote = Quote.get()
    client.post("/staff/logout")
    login(client, "pat@acme.example")
    assert client.get(f"/quotes/{quote.public_id}").status_code == 404
    assert quote.number not in client.get(f"/quotes/requests/{priced_rfq.public_id}").get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"valid_until": ""}, "Enter the last valid day."),
        ({"valid_until": "2001-01-01"}, "Choose a date from today on."),
        ({"lines-0-unit_price": "12.505"}, "Enter an amount like 1250.00"),
        ({"lines-0-quantity": "0"}, "Enter a quantity like 2 or 2.5."),
        ({"lines-0-item_code": "NOPE-1"}, "No product has this item code."),
        ({"lines-1-unit_price": ""}, "Enter a unit price."),
    ],
)
def test_staff_quote_validation_is_422_with_typed_values_kept(client, priced_rfq, extra, message):
    """Bad staff input: 422, the message next to the field, typed values kept, nothing stored."""
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    response = client.post(
        f"/staff/quotes/rfqs/{priced_rfq.id}/quote", data=staff_quote_data(**extra)
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body and 'class="error"' in body
    assert 'value="Custom jig"' in body and "Lead time two weeks." in body
    assert Quote.select().count() == 0 and QuoteLine.select().count() == 0


def test_office_quotes_a_customer_with_no_request(client, acme, buyer, mailbox):
    """A quote the office starts itself: the customer named by account number, one of its
    sites, typed lines; published, it goes to the company's address and the customer (a
    login of that site) sees it and can accept it."""
    factories.product(item_code="BRKT-200", description="Bracket", price_cents=1290)
    north = factories.site(acme, name="North plant")
    buyer.all_sites = False
    buyer.save()
    from portal.models import PortalUserSite

    PortalUserSite.create(user=buyer, site=north)
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    page = client.get(f"/staff/quotes/new?customer_id={acme.id}").get_data(as_text=True)
    assert f'value="{acme.account_number} · Acme Manufacturing"' in page
    assert "North plant" in page and page.count('name="lines-') >= 12  # three blank rows

    data = staff_quote_data(customer=acme.account_number, site_id=str(north.id))
    response = client.post("/staff/quotes/new", data=data)
    assert response.status_code == 303
    quote = Quote.get()
    assert (quote.customer_id, quote.site_id, quote.rfq_id) == (acme.id, north.id, None)
    assert quote.status == "draft" and quote.total_cents == 400 * 1250 + 38000
    assert AuditLog.get(AuditLog.action == "quote.created").object_id == str(quote.id)

    mailbox.clear()
    assert client.post(f"/staff/quotes/{quote.id}/publish").status_code == 303
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "ap@acme.example"  # no requester: the company's address
    client.post("/staff/logout")
    login(client, "pat@acme.example")
    assert quote.number in client.get("/quotes/").get_data(as_text=True)
    accepted = client.post(f"/quotes/{quote.public_id}/accept", data=signing(client, quote))
    assert accepted.status_code == 303
    assert Quote.get_by_id(quote.id).status == "accepted"


def test_catalog_line_without_a_price_gets_the_customers_price(client, acme):
    """A line with an item code and no unit price is priced from the customer's price list,
    else the catalog; a free-text line still needs a price."""
    from portal.models import CustomerPrice

    bracket = factories.product(item_code="BRKT-200", description="Bracket", price_cents=1290)
    factories.product(item_code="BOLT-M10", description="Hex bolt", price_cents=1950)
    CustomerPrice.create(customer=acme, product=bracket, price_cents=1250)
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    data = staff_quote_data(
        customer=acme.account_number,
        **{
            "lines-0-unit_price": "",
            "lines-2-item_code": "bolt-m10",
            "lines-2-quantity": "10",
        },
    )
    assert client.post("/staff/quotes/new", data=data).status_code == 303
    prices = [(ln.description, ln.unit_price_cents) for ln in Quote.get().lines]
    assert prices == [("Bracket", 1250), ("Custom jig", 38000), ("Hex bolt", 1950)]


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"customer": ""}, "Enter the customer&#39;s account number or name."),
        ({"customer": "Initech"}, "No customer has this account number or name."),
        ({"site_id": "999999"}, "Not a valid choice"),
        ({"lines-1-unit_price": ""}, "Enter a unit price."),
    ],
)
def test_office_quote_validation_is_422_and_keeps_what_was_typed(client, acme, extra, message):
    """A bad customer, a site not the customer's or a bad line: 422 next to the field,
    nothing stored, the lines and the customer box as typed."""
    factories.product(item_code="BRKT-200", description="Bracket", price_cents=1290)
    other_site = factories.site(factories.customer(), name="Elsewhere")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    data = staff_quote_data(**{"customer": acme.account_number, **extra})
    if extra.get("site_id"):
        data["site_id"] = str(other_site.id)
    response = client.post("/staff/quotes/new", data=data)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body and 'class="error"' in body
    assert 'value="Custom jig"' in body and f'value="{data["customer"]}"' in body
    assert Quote.select().count() == 0 and QuoteLine.select().count() == 0


def test_staff_close_rfq_and_quote_list_filter(client, acme, priced_rfq):
    """Closing an RFQ is a POST; the quote list filters by status."""
    draft = factories.quote(acme, status="draft")
    declined = factories.quote(acme, status="declined")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    assert client.post(f"/staff/quotes/rfqs/{priced_rfq.id}/close").status_code == 303
    assert Rfq.get_by_id(priced_rfq.id).status == "closed"
    drafts = client.get("/staff/quotes/list?status=draft").get_data(as_text=True)
    assert draft.number in drafts and declined.number not in drafts
    fragment = client.get("/staff/quotes/list?status=declined", headers=HX)
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="results">') and declined.number in body


def test_staff_pages_need_a_staff_login(client, buyer, priced_rfq):
    """E5: customers and guests never reach the back office's quote pages, htmx included."""
    assert client.get("/staff/quotes/").headers["Location"].startswith("/staff/login")
    assert (
        client.get("/staff/quotes/list", headers=HX)
        .headers["HX-Redirect"]
        .startswith("/staff/login")
    )
    login(client, "pat@acme.example")
    for url in ("/staff/quotes/", f"/staff/quotes/rfqs/{priced_rfq.id}"):
        assert client.get(url).status_code in (302, 403)
    response = client.post(f"/staff/quotes/rfqs/{priced_rfq.id}/quote", data=staff_quote_data())
    assert response.status_code in (302, 403)
    response = client.post("/staff/quotes/new", data=staff_quote_data(customer="Acme"))
    assert response.status_code in (302, 403)
    assert Quote.select().count() == 0


def test_quote_and_request_lists_run_a_fixed_number_of_queries(client, acme, buyer):
    """No query per row on either tab of the customer's list."""
    from playhouse.test_utils import count_queries

    login(client, "pat@acme.example")
    site = factories.site(acme)
    factories.quote(acme, rfq_=factories.rfq(acme, user=buyer, site=site))
    counts = []
    for _ in range(2):
        with count_queries() as quotes_tab:
            client.get("/quotes/")
        with count_queries() as requests_tab:
            client.get("/quotes/?tab=requests")
        counts.append((quotes_tab.count, requests_tab.count))
        for _ in range(5):
            factories.quote(acme, rfq_=factories.rfq(acme, user=buyer, site=site))
    assert counts[0][0] > 0 and counts[0] == counts[1]


def test_quote_published_file_template_uses_only_the_documented_placeholders(app):
    """The built-in quote_published email names exactly the placeholders staff are shown."""
    from jinja2 import meta

    from portal.services import email_templates

    source = email_templates.file_source("quote_published")
    used = meta.find_undeclared_variables(app.jinja_env.parse(source))
    assert used <= set(email_templates.placeholders("quote_published"))
    assert {"name", "quote_number", "total", "valid_until", "link"} <= used


def test_publish_uses_the_staff_edited_template(client, priced_rfq, mailbox):
    """An override saved in the back office is what the customer receives."""
    from portal.services import email_templates

    staff = factories.staff(email="sam@example.com")
    email_templates.save(
        "quote_published",
        "Quote {{ quote_number }}: {{ total }}",
        "Hi {{ name }}, see {{ link }} (valid until {{ valid_until }}).",
        staff,
    )
    quote = quotes.create_quote(
        priced_rfq, staff, quotes.proposed_lines(priced_rfq), date(2099, 1, 31)
    )
    staff_login(client, "sam@example.com")
    mailbox.clear()
    assert client.post(f"/staff/quotes/{quote.id}/publish").status_code == 303
    (message,) = mailbox.wait_for(1)
    assert message["Subject"] == f"Quote {quote.number}: $5,585.00"  # 400 x 12.50 + 30 x 19.50
    assert "Hi Pat," in message.get_content() and "Jan 31, 2099" in message.get_content()


def test_customer_text_is_escaped_on_every_page(client, acme, buyer):
    """G1: notes and descriptions typed by a customer are shown as text, never as markup."""
    payload = '"><img src=x onerror=alert(1)> hx-get=/x'
    login(client, "pat@acme.example")
    client.post(
        "/quotes/requests/new",
        data=rfq_data(notes=payload, **{"lines-0-description": payload}),
    )
    rfq = Rfq.get()
    customer_page = client.get(f"/quotes/requests/{rfq.public_id}").get_data(as_text=True)
    factories.staff(email="sam@example.com")
    client.post("/logout")
    staff_login(client, "sam@example.com")
    pages = [
        customer_page,
        client.get(f"/staff/quotes/rfqs/{rfq.id}").get_data(as_text=True),
        client.get("/staff/quotes/").get_data(as_text=True),
        client.get(f"/staff/quotes/rfqs/{rfq.id}/quote").get_data(as_text=True),
    ]
    for page in pages:
        assert "<img src=x" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page or "&#34;&gt;&lt;img" in page
