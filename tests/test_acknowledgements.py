"""Customer acknowledgements (issue 18): what a customer sends (a case, a question about an
invoice, a request for quote, an access request) is acknowledged by one email over SMTP,
naming the business and carrying the absolute link to follow it; a double submit that
opens one case sends one acknowledgement."""

import pytest

from portal.models import Case, OutboxMessage, Rfq
from portal.services import outbox, settings

from . import factories
from .conftest import login
from .test_quick_request import send
from .test_quotes import rfq_data

BASE = "http://localhost"


@pytest.fixture
def pat(app):
    settings.update({"company_name": "Harbor Supply", "request_access": True})
    customer = factories.customer(name="Acme Manufacturing")
    return factories.portal_user(
        customer, email="pat@acme.example", first_name="Pat", last_name="Buyer"
    )


def acknowledgements(mailbox, kind: str, to: str) -> list:
    """The `kind` emails that reached `to` over SMTP (the outbox row names the kind)."""
    outbox.deliver_due()
    ids = {
        row.message_id
        for row in OutboxMessage.select().where(
            (OutboxMessage.kind == kind) & (OutboxMessage.to_addr == to)
        )
    }
    return [m for m in mailbox.to(to) if m["Message-ID"] in ids]


def text_of(message) -> str:
    return message.get_content().replace("\r\n", "\n")


def test_a_new_case_is_acknowledged_once_with_its_link(client, mailbox, pat):
    """The case form posted twice (a double click, one request key): one case, one email,
    naming the business (not the product) and linking to the case."""
    login(client, pat.email)
    data = {"subject": "Pump leaks", "body": "It drips at the seal.", "request_key": "k-1"}
    assert client.post("/cases/new", data=data).status_code == 303
    assert client.post("/cases/new", data=data).status_code == 303
    case = Case.get()
    assert Case.select().count() == 1

    (message,) = acknowledgements(mailbox, "case_received", pat.email)
    assert message["Subject"].strip() == f"We have your case {case.number}: Pump leaks"
    body = text_of(message)
    assert "Hello Pat Buyer," in body
    assert f"Thank you for writing to Harbor Supply. We have your case {case.number}" in body
    assert "about your account" in body
    assert f"{BASE}/cases/{case.public_id}\n" in body
    assert "Doorstep" not in body and "Doorstep" not in message["Subject"]


def test_a_question_about_an_invoice_is_acknowledged_naming_the_invoice(client, mailbox, pat):
    """ "Question this invoice" posted twice within the minute is one case, one email."""
    invoice, _ = factories.invoice(pat.contact.customer)
    login(client, pat.email)
    data = {"subject": "Wrong price", "message": "Line 2 is not our price."}
    for _ in range(2):
        response = client.post(f"/invoices/{invoice.public_id}/question", data=data)
        assert response.status_code == 303
    case = Case.get()

    (message,) = acknowledgements(mailbox, "case_received", pat.email)
    body = text_of(message)
    assert f"We have your case {case.number} about invoice {invoice.number}:" in body
    assert f"{BASE}/cases/{case.public_id}\n" in body


def test_a_request_for_quote_is_acknowledged_with_its_items_and_link(client, mailbox, pat):
    login(client, pat.email)
    data = rfq_data(
        needed_by="2099-01-31", notes="", **{"lines-0-description": "Laser-cut bracket"}
    )
    assert client.post("/quotes/requests/new", data=data).status_code == 303
    rfq = Rfq.get()

    (message,) = acknowledgements(mailbox, "rfq_received", pat.email)
    assert message["Subject"].strip() == f"We have your request for quote {rfq.number}"
    body = text_of(message)
    assert "Thank you for asking Harbor Supply for a quote." in body
    assert "- Laser-cut bracket × 250" in body and "Needed by: Jan 31, 2099" in body
    assert f"{BASE}/quotes/requests/{rfq.public_id}\n" in body


def test_an_access_request_is_acknowledged_once_naming_the_business(client, mailbox, pat):
    data = {"name": "Dana Smith", "company": "Beta Foods", "email": "dana@beta.example"}
    assert client.post("/request-access/", data=data).status_code == 303

    (message,) = acknowledgements(mailbox, "access_request_received", "dana@beta.example")
    assert "Harbor Supply" in message["Subject"]
    assert "Harbor Supply portal for Beta Foods" in " ".join(text_of(message).split())


def test_a_guests_quick_request_sends_no_case_acknowledgement(client, mailbox, pat):
    """A guest's quick request has no login to acknowledge (the account's contacts get the
    case's own email): a case is opened, no case_received is queued, the office is alerted."""
    settings.save({"quick_requests": True})
    boss = factories.staff(email="boss@harbor.example", admin=True)
    invoice, code = factories.invoice(pat.contact.customer)
    response = send(client, invoice_number=invoice.number, quick_pay_code=code)
    assert response.headers["Location"] == "/request-service/sent"
    assert Case.select().count() == 1
    assert not OutboxMessage.select().where(OutboxMessage.kind == "case_received").exists()
    # The office hears of it like any new case.
    (alert,) = [m for m in mailbox.to(boss.email) if m["Auto-Submitted"] == "auto-generated"]
    assert f"New case {Case.get().number} from Acme Manufacturing" in alert["Subject"]
