"""Customer notice choices (issue 18), over real SMTP: the quote_published and shipment emails
respect a contact's choice and carry a one-click unsubscribe (RFC 8058) that needs no session
and no CSRF token and turns off one topic for one contact; a login's "Email notices" card on
My account; receipts and security emails cannot be turned off."""

import io
import re
from datetime import date
from urllib.parse import urlsplit

import pytest

from portal.models import AuditLog, Contact
from portal.models_notices import NoticeChoice
from portal.services import importer, notices, outbox, quotes, settings

from . import factories
from .conftest import login, staff_login
from .test_email_placeholders import guest_pays, web_order

BASE = "http://localhost"


@pytest.fixture
def acme(app):
    settings.update({"company_name": "Harbor Supply"})
    return factories.customer(name="Acme Manufacturing", account_number="ACME01")


def delivered(mailbox) -> list:
    """What reached the SMTP server (services called outside a request leave mail queued)."""
    outbox.deliver_due()
    return list(mailbox.messages)


def publish_for(requester):
    """A quote answering the requester's RFQ, published by the office."""
    customer = requester.contact.customer
    rfq = factories.rfq(customer, user=requester)
    quote = factories.quote(customer, status="draft", rfq_=rfq)
    quotes.publish(quote, factories.staff())
    return quote


def ship(order_number="SO-1", shipment="SH-1", with_order=True):
    """A shipment on its way (and its order, unless the order is already here), imported as
    the ERP sends them."""
    today = date.today().isoformat()
    files = [
        (
            "shipments",
            "order_number,number,shipped_on,carrier,tracking_number,delivered_on\n"
            f"{order_number},{shipment},{today},UPS,1Z9,\n",
        )
    ]
    if with_order:
        order = f"number,account_number,order_date\n{order_number},ACME01,{today}\n"
        files.insert(0, ("orders", order))
    for kind, text in files:
        result = importer.import_csv(kind, io.StringIO(text))
        assert result.ok, result.errors


def unsubscribe_path(message) -> str:
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(\S+)>", message["List-Unsubscribe"]).group(1)
    assert link.startswith(f"{BASE}/unsubscribe/")
    return urlsplit(link).path


# --- who gets quote and shipment emails -----------------------------------------------------


def test_quote_published_goes_to_the_requester_unless_their_choice_is_off(app, mailbox, acme):
    """Pat gets the quote email with the unsubscribe headers; after Pat turns quotes off the
    next one goes to nobody (not the company's address instead)."""
    acme.email = "ap@acme.example"
    acme.save()
    pat = factories.portal_user(acme, email="pat@acme.example", first_name="Pat")
    publish_for(pat)
    (message,) = delivered(mailbox)
    assert message["To"] == "pat@acme.example"
    assert unsubscribe_path(message)

    mailbox.clear()
    notices.set_choice(pat.contact, "quote_published", False)
    publish_for(pat)
    assert delivered(mailbox) == []


def test_a_quote_for_the_companys_address_follows_that_contacts_choice(app, mailbox, acme):
    """A quote with no requester goes to the company's address; when a contact owns that
    address, its choice counts and its unsubscribe is in the headers."""
    acme.email = "office@acme.example"
    acme.save()
    quote = factories.quote(acme, status="draft")
    quotes.publish(quote, factories.staff())
    (plain,) = delivered(mailbox)
    assert plain["To"] == "office@acme.example" and plain["List-Unsubscribe"] is None

    office = factories.portal_user(acme, email="office@acme.example").contact
    mailbox.clear()
    quotes.publish(factories.quote(acme, status="draft"), factories.staff())
    (message,) = delivered(mailbox)
    assert notices.read_unsubscribe(unsubscribe_path(message).rsplit("/", 1)[1]) == (
        office,
        "quote_published",
    )
    notices.set_choice(office, "quote_published", False)
    mailbox.clear()
    quotes.publish(factories.quote(acme, status="draft"), factories.staff())
    assert delivered(mailbox) == []


def test_shipment_email_respects_the_order_shipped_choice(app, mailbox, acme):
    """The shipment notice to the company's address carries its contact's unsubscribe; with
    order_shipped off the next shipment emails nobody."""
    acme.email = "ap@acme.example"
    acme.save()
    contact = factories.portal_user(acme, email="ap@acme.example").contact
    ship("SO-1", "SH-1")
    (message,) = delivered(mailbox)
    assert message["To"] == "ap@acme.example" and "SH-1" in message.get_content()
    assert notices.read_unsubscribe(unsubscribe_path(message).rsplit("/", 1)[1]) == (
        contact,
        "order_shipped",
    )
    notices.set_choice(contact, "order_shipped", False)
    mailbox.clear()
    ship("SO-2", "SH-2")
    assert delivered(mailbox) == []


def test_a_portal_orders_shipment_goes_to_whoever_placed_it_unless_turned_off(app, mailbox):
    """A shipment of an order placed in the portal is announced to the login that placed it
    (not the company's address), with its unsubscribe; with order_shipped off, to nobody."""
    from portal.models import PortalUser, WebOrder

    first = web_order()
    outbox.deliver_due()
    mailbox.clear()
    ship(first.number, "SH-1", with_order=False)
    (message,) = delivered(mailbox)
    assert message["To"] == "pat@acme.example" and "SH-1" in message.get_content()
    pat = PortalUser.get_by_id(WebOrder.get(WebOrder.order == first.id).placed_by_id)
    token = unsubscribe_path(message).rsplit("/", 1)[1]
    assert notices.read_unsubscribe(token) == (pat.contact, "order_shipped")

    notices.set_choice(pat.contact, "order_shipped", False)
    mailbox.clear()
    ship(first.number, "SH-2", with_order=False)
    assert delivered(mailbox) == []


# --- one-click unsubscribe ------------------------------------------------------------------


def test_one_click_post_turns_off_only_that_topic_for_only_that_contact(make_app, mailbox):
    """RFC 8058: the mail client POSTs `List-Unsubscribe=One-Click` to the header's URL with
    no cookie and no CSRF token (CSRF on here, as in production): 2xx, that topic off for
    that contact; its other topics and another contact's stay on; audited."""
    from portal.db import db

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.connect(reuse_if_open=True)
        settings.update({"company_name": "Harbor Supply"})
        customer = factories.customer(name="Acme Manufacturing")
        pat = factories.portal_user(customer, email="pat@acme.example")
        kim = factories.portal_user(customer, email="kim@acme.example")
        publish_for(pat)
        publish_for(kim)
        messages = {m["To"]: m for m in delivered(mailbox)}
        path = unsubscribe_path(messages["pat@acme.example"])

        answer = app.test_client().post(
            path,
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert 200 <= answer.status_code < 300
        assert notices.choices(pat.contact) == {t: t != "quote_published" for t in notices.TOPICS}
        assert all(notices.choices(kim.contact).values())
        (row,) = AuditLog.select().where(AuditLog.action == "notice.off")
        assert "quote_published" in row.detail and "unsubscribe" in row.detail
        # Again: still off, nothing more recorded.
        assert (
            app.test_client().post(path, data={"List-Unsubscribe": "One-Click"}).status_code < 300
        )
        assert AuditLog.select().where(AuditLog.action == "notice.off").count() == 1
        db.close()


def test_the_link_opens_a_confirm_page_that_changes_nothing_until_the_button(app, mailbox, acme):
    """A person (or a link scanner) who opens the link sees what would stop and for whom;
    the button on that page unsubscribes and says so."""
    pat = factories.portal_user(acme, email="pat@acme.example")
    publish_for(pat)
    path = unsubscribe_path(delivered(mailbox)[0])
    client = app.test_client()
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Stop quotes?" in text and "pat@acme.example" in text and f'action="{path}"' in text
    assert notices.wants(pat.contact, "quote_published")
    done = client.post(path)
    assert done.status_code == 200 and "You are unsubscribed" in done.get_data(as_text=True)
    assert not notices.wants(pat.contact, "quote_published")


@pytest.mark.parametrize("how", ["flipped", "cut", "other-topic"])
def test_a_tampered_token_is_refused_and_changes_nothing(app, mailbox, acme, how):
    """A changed signature, a cut token, or a topic swapped into the payload: 404 on GET and
    POST, and no choice is recorded."""
    pat = factories.portal_user(acme, email="pat@acme.example")
    token = notices.unsubscribe_token(pat.contact, "quote_published")
    payload, _, signature = token.rpartition(".")
    if how == "flipped":
        bad = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    elif how == "cut":
        bad = token[:-4]
    else:
        other = notices.unsubscribe_token(pat.contact, "statement")
        bad = other.split(".")[0] + "." + token.split(".", 1)[1]
    client = app.test_client()
    assert client.get(f"/unsubscribe/{bad}").status_code == 404
    for data in ({"List-Unsubscribe": "One-Click"}, {}):
        assert client.post(f"/unsubscribe/{bad}", data=data).status_code == 404
    assert NoticeChoice.select().count() == 0
    assert not AuditLog.select().where(AuditLog.action == "notice.off").exists()


# --- My account: Email notices --------------------------------------------------------------


def checkboxes(page: str) -> dict[str, tuple[bool, bool]]:
    """{topic: (checked, disabled)} of the Email notices card."""
    found = {}
    for tag in re.findall(r'<input type="checkbox" name="topic"[^>]*>', page):
        topic = re.search(r'value="([^"]+)"', tag).group(1)
        found[topic] = (" checked" in tag, " disabled" in tag)
    return found


def test_a_login_changes_its_email_notices_they_persist_and_are_audited(app, client, acme):
    """The card offers exactly the topics (no receipt, no security choice); a save turns
    off what is unticked, keeps the rest, audits each change, and the page shows it."""
    factories.portal_user(acme, email="pat@acme.example")
    login(client, "pat@acme.example")
    page = client.get("/account/").get_data(as_text=True)
    assert set(checkboxes(page)) == set(notices.TOPICS)
    assert all(checked and not disabled for checked, disabled in checkboxes(page).values())
    assert "Payment receipts and security emails" in page

    kept = ["new_invoice", "statement", "order_shipped", "case_updates"]
    response = client.post("/account/notices", data={"topic": kept})
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/account/#email-notices")
    contact = Contact.get(Contact.email == "pat@acme.example")
    assert notices.choices(contact) == {t: t in kept for t in notices.TOPICS}
    offs = AuditLog.select().where(AuditLog.action == "notice.off")
    assert sorted(re.search(r"reminder|quote_published", r.detail).group(0) for r in offs) == [
        "quote_published",
        "reminder",
    ]
    page = client.get("/account/").get_data(as_text=True)
    assert {t for t, (checked, _) in checkboxes(page).items() if checked} == set(kept)

    # Turning one back on changes one row; nothing else is touched.
    client.post("/account/notices", data={"topic": [*kept, "reminder"]})
    assert notices.choices(contact)["reminder"] and not notices.choices(contact)["quote_published"]
    assert AuditLog.select().where(AuditLog.action == "notice.on").count() == 1


def test_billing_topics_are_not_offered_to_a_non_billing_contact(app, client, acme):
    """A non-billing contact sees the billing topics disabled with the reason, and posting
    them changes nothing (the staff's billing flag decides)."""
    factories.portal_user(acme, email="ops@acme.example", billing=False)
    login(client, "ops@acme.example")
    page = client.get("/account/").get_data(as_text=True)
    boxes = checkboxes(page)
    assert boxes["statement"] == (False, True) and boxes["quote_published"] == (True, False)
    assert "Only for billing contacts" in page
    client.post("/account/notices", data={"topic": list(notices.TOPICS)})
    assert NoticeChoice.select().count() == 0


def test_receipts_and_security_emails_still_arrive_with_every_notice_off(
    app, client, mailbox, acme
):
    """With every topic off, a payment's receipt and a password reset still reach the login."""
    user = factories.portal_user(acme, email="pat@example.com", first_name="Pat")
    login(client, "pat@example.com")
    assert client.post("/account/notices", data={}).status_code in (302, 303)
    assert not any(notices.choices(user.contact).values())
    client.post("/logout")

    invoice, code = factories.invoice(acme, total_cents=100_000)
    mailbox.clear()
    guest = app.test_client()
    guest_pays(guest, invoice, code, "300.00", "test-checkout")
    assert app.test_client().post("/password/forgot", data={"email": user.email}).status_code == 303
    subjects = [m["Subject"] for m in mailbox.wait_for(2) if m["To"] == "pat@example.com"]
    assert any("receipt" in s.lower() for s in subjects), subjects
    assert any("password" in s.lower() for s in subjects), subjects


def test_staff_see_each_contacts_choices_and_how_they_changed(app, client, acme):
    """The staff customer page answers "why did I not get it": a contact's unsubscribed topic
    reads off, by the unsubscribe link; a non-billing contact's billing topics say so; the
    billing toggle offers the opposite of the current flag."""
    pat = factories.portal_user(acme, email="pat@acme.example").contact
    factories.portal_user(acme, email="ops@acme.example", billing=False)
    path = urlsplit(notices.unsubscribe_url(pat, "quote_published")).path
    assert app.test_client().post(path, data={"List-Unsubscribe": "One-Click"}).status_code < 300
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    page = client.get(f"/staff/customers/{acme.id}").get_data(as_text=True)
    table = page[page.index('id="contacts"') :]
    pat_at, ops_at = table.index("pat@acme.example"), table.index("ops@acme.example")
    rows = {"pat@acme.example": table[pat_at:ops_at], "ops@acme.example": table[ops_at:]}
    assert 'Quotes: off</span> <span class="muted">(unsubscribe link' in rows["pat@acme.example"]
    assert "5 of 6 notices on" in rows["pat@acme.example"]
    assert "Stop billing mail" in rows["pat@acme.example"]
    assert "Statements: not a billing contact" in rows["ops@acme.example"]
    assert "Make billing contact" in rows["ops@acme.example"]
