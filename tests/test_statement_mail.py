"""Customer mail about money (issue 18, services/statement_mail.py), over real SMTP: the
new-invoice email from a back-office invoice (an import sends none) and statements by email,
monthly from the worker and on demand from the back office, each sent once per customer and
period, also with two workers at once, with the numbers of the statement page."""

import io
import re
import threading
from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest

from portal import clock
from portal.db import db
from portal.models import Contact, Customer, OutboxMessage
from portal.models_statement_mail import StatementMail
from portal.services import importer, notices, outbox, settings, statement_mail

from . import factories
from .conftest import login, staff_login

BASE = "http://localhost"


@pytest.fixture
def acme(app):
    """An account whose contacts show each rule: Lee (a billing login of the whole account)
    gets billing mail; Kim is not a billing contact; Ola turned statements and new invoices
    off; Sam's login sees only the North plant."""
    customer = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    north = factories.site(customer, name="North", site_code="N1")
    factories.portal_user(customer, email="lee@acme.example", first_name="Lee", last_name="Ray")
    factories.portal_user(customer, email="kim@acme.example", billing=False)
    ola = factories.portal_user(customer, email="ola@acme.example").contact
    for topic in ("statement", "new_invoice"):
        notices.set_choice(ola, topic, False)
    factories.portal_user(customer, email="sam@acme.example", sites=[north])
    return customer


def sent(mailbox, kind: str) -> list:
    """What reached the SMTP server of `kind` (a service called outside a request leaves
    its emails queued until the outbox delivers them)."""
    outbox.deliver_due()
    subjects = {"statement": "Your statement from", "invoice_issued": "New invoice"}
    return [m for m in mailbox.messages if m["Subject"].startswith(subjects[kind])]


def balances(text: str) -> tuple[str, str]:
    """(opening, closing) as the statement email or page states them."""
    if "<dd>" in text:
        found = re.findall(r"<dt>(Opening|Closing) balance</dt><dd>([^<]+)</dd>", text)
        return dict(found)["Opening"], dict(found)["Closing"]
    opening = re.search(r"Opening balance on [^:]+: (\S+)", text).group(1)
    closing = re.search(r"Closing balance on [^:]+: (\S+)", text).group(1)
    return opening, closing


def this_months_period() -> tuple[int, date, date]:
    """A statement day that has come this month, and the period it closes (worked out here,
    not by the code under test)."""
    today = clock.business_today()
    day = min(today.day, 28)
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=day)
    return day, start, today.replace(day=day) - timedelta(days=1)


# --- the period ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "today, day, expected",
    [
        (date(2026, 12, 1), 1, ("2026-12", date(2026, 11, 1), date(2026, 11, 30))),
        (date(2026, 12, 20), 15, ("2026-12", date(2026, 11, 15), date(2026, 12, 14))),
        (date(2026, 12, 15), 15, ("2026-12", date(2026, 11, 15), date(2026, 12, 14))),
        (date(2026, 1, 10), 5, ("2026-01", date(2025, 12, 5), date(2026, 1, 4))),
        (date(2026, 3, 28), 28, ("2026-03", date(2026, 2, 28), date(2026, 3, 27))),
        (date(2026, 12, 14), 15, None),
        (date(2026, 12, 14), 0, None),
    ],
)
def test_the_monthly_period_is_the_month_up_to_the_day_before_the_statement_day(
    today, day, expected
):
    """From the statement day of the month before to the day before this month's; nothing
    before the day comes, nothing when statements are off. (A day after the 1st once gave
    a period that started after it ended.)"""
    assert statement_mail.monthly_period(today, day) == expected


# --- statements from the worker -------------------------------------------------------------


def test_run_due_emails_one_statement_per_customer_to_the_contacts_who_want_it(app, mailbox, acme):
    """On the statement day: one statement to Lee only (not Kim, not a billing contact; not
    Ola, who turned statements off; not Sam, whose login sees one site), with its one-click
    unsubscribe; a customer with nothing open gets none; a second pass sends nothing. The
    emailed balances are the statement page's for the same period."""
    day, start, end = this_months_period()
    settings.save({"statement_day": day})
    factories.invoice(acme, total_cents=40_000, issue_date=start - timedelta(days=20))
    factories.invoice(acme, total_cents=12_345, issue_date=start)
    paid_up = factories.customer()
    factories.portal_user(paid_up, email="paid@up.example")
    factories.invoice(paid_up, total_cents=5_000, paid_cents=5_000, issue_date=start)

    assert statement_mail.run_due() == 1
    (message,) = sent(mailbox, "statement")
    assert message["To"] == "lee@acme.example"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith(f"<{BASE}/unsubscribe/")
    row = StatementMail.get()
    assert (row.customer_id, row.start, row.end) == (acme.id, start, end)
    assert row.sent_to == "lee@acme.example"
    text = message.get_content()
    assert "Hello Lee Ray," in text and "Acme Manufacturing" in text

    mailbox.clear()
    assert statement_mail.run_due() == 0
    assert sent(mailbox, "statement") == []
    assert StatementMail.select().count() == 1

    # One source of truth: the email's link opens the statement with the same balances.
    link = re.search(rf"{BASE}/statements/\S+", text).group(0)
    client = app.test_client()
    login(client, "lee@acme.example")
    page = client.get(link.removeprefix(BASE))
    assert page.status_code == 200
    assert balances(page.get_data(as_text=True)) == balances(text)
    assert balances(text) == ("$400.00", "$523.45")


def _worker_pass(app, barrier, results):
    with app.app_context():
        db.connect(reuse_if_open=True)
        try:
            barrier.wait(timeout=10)
            results.append(statement_mail.run_due())
        finally:
            db.close()


def test_two_workers_at_once_send_each_statement_once(app, mailbox, caplog):
    """J2, J6: two worker passes at the same moment (threads, each with its own connection)
    send each customer's statement once: the unique (customer, period) row decides."""
    day, start, _end = this_months_period()
    settings.save({"statement_day": day})
    addresses = []
    for n in range(4):
        customer = factories.customer()
        addresses.append(factories.portal_user(customer, email=f"ap{n}@race.example").email)
        factories.invoice(customer, issue_date=start)
    barrier = threading.Barrier(2)
    results = []
    threads = [
        threading.Thread(target=_worker_pass, args=(app, barrier, results)) for _ in range(2)
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]

    assert len(results) == 2 and sum(results) == 4
    assert "statement email failed" not in caplog.text  # neither pass hit an error
    assert StatementMail.select().count() == 4
    assert OutboxMessage.select().where(OutboxMessage.kind == "statement").count() == 4
    messages = sent(mailbox, "statement")
    assert sorted(m["To"] for m in messages) == sorted(addresses)


# --- statements on demand -------------------------------------------------------------------


def test_staff_email_statement_sends_it_now_once_a_day(app, client, mailbox, acme):
    """Staff's "Email statement": the statement the customer's page opens with, to Lee only,
    at once; a second click the same day sends nothing and says so; the page says when and
    to whom it went."""
    factories.invoice(acme, total_cents=25_000)
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    response = client.post(f"/staff/customers/{acme.id}/statement")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/staff/customers/{acme.id}#contacts")
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "lee@acme.example"
    row = StatementMail.get()
    assert row.staff_user_id is not None and row.period == clock.business_today().isoformat()

    again = client.post(f"/staff/customers/{acme.id}/statement", follow_redirects=True)
    page = again.get_data(as_text=True)
    assert "already emailed (to lee@acme.example)" in page
    assert "Last statement emailed" in page
    assert StatementMail.select().count() == 1 and len(sent(mailbox, "statement")) == 1

    customer = app.test_client()
    login(customer, "lee@acme.example")
    link = re.search(rf"{BASE}/statements/\S+", message.get_content()).group(0)
    statement_page = customer.get(link.removeprefix(BASE)).get_data(as_text=True)
    assert balances(statement_page) == balances(message.get_content()) == ("$0.00", "$250.00")
    default_page = customer.get("/statements/").get_data(as_text=True)
    assert balances(default_page) == balances(message.get_content())


def test_email_statement_with_the_portal_off_sends_nothing_and_says_why(client, mailbox, acme):
    """Like the monthly run and the new-invoice email: a customer whose portal is off gets no
    statement, whose links (statement, quick pay) would open nothing."""
    factories.invoice(acme, total_cents=25_000)
    Customer.update(portal_enabled=False).where(Customer.id == acme.id).execute()
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    response = client.post(f"/staff/customers/{acme.id}/statement", follow_redirects=True)
    assert "the portal is switched off for" in response.get_data(as_text=True)
    assert StatementMail.select().count() == 0 and sent(mailbox, "statement") == []


def test_email_statement_to_a_customer_whose_contacts_want_none_sends_nothing(client, mailbox):
    customer = factories.customer()
    factories.portal_user(customer, email="ops@beta.example", billing=False)
    factories.invoice(customer)
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    page = client.post(f"/staff/customers/{customer.id}/statement", follow_redirects=True).get_data(
        as_text=True
    )
    assert "No statement was sent" in page
    assert sent(mailbox, "statement") == []
    assert StatementMail.get().sent_to == ""


# --- a new invoice --------------------------------------------------------------------------


def new_invoice_form(**extra) -> dict:
    data = {
        "number": "INV-7001",
        "customer": "ACME01",
        "site_id": "0",
        "issue_date": date.today().isoformat(),
        "due_date": (date.today() + timedelta(days=30)).isoformat(),
        "currency": "USD",
        "total": "1234.56",
        "description": "Service visit",
    }
    data.update(extra)
    return data


def test_a_back_office_invoice_emails_its_billing_contacts_the_signed_pay_link(
    app, client, mailbox, acme
):
    """One email, to Lee only (Kim is not a billing contact, Ola turned new invoices off,
    Sam sees another site), with the unsubscribe headers and the signed pay link, which a
    guest opens on the invoice."""
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    assert client.post("/staff/invoices/new", data=new_invoice_form()).status_code == 303
    (message,) = mailbox.wait_for(1)
    assert sent(mailbox, "invoice_issued") == [message]
    assert message["To"] == "lee@acme.example"
    assert message["Subject"].startswith("New invoice INV-7001")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(rf"{BASE}/pay/link/\S+", message.get_content()).group(0)
    guest = app.test_client().get(urlsplit(link).path, follow_redirects=True)
    assert guest.status_code == 200 and "INV-7001" in guest.get_data(as_text=True)


def test_an_imported_invoice_emails_nobody(app, mailbox, acme):
    """An import mirrors the books, which send their own invoices: no new-invoice email."""
    text = (
        "number,account_number,site_code,issue_date,due_date,total,amount_paid,currency,"
        "quick_pay_code,discount_percent,discount_days,description\n"
        f"INV-8001,ACME01,,{date.today()},{date.today() + timedelta(days=30)},99.00,,,,,,\n"
    )
    result = importer.import_csv("invoices", io.StringIO(text))
    assert result.ok and result.created == 1, result.errors
    assert sent(mailbox, "invoice_issued") == []
    assert not OutboxMessage.select().where(OutboxMessage.kind == "invoice_issued").exists()


def test_a_contact_made_non_billing_by_staff_gets_no_billing_mail(app, client, mailbox, acme):
    """Staff's "Stop billing mail" on Lee: the next invoice and statement reach nobody; the
    change is audited; Lee still counts for the non-billing topics."""
    from portal.models import AuditLog

    lee = Contact.get(Contact.email == "lee@acme.example")
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    response = client.post(f"/staff/customers/contacts/{lee.id}/billing", data={"billing": "off"})
    assert response.status_code == 303
    assert not Contact.get_by_id(lee.id).billing
    assert AuditLog.select().where(AuditLog.action == "contact.billing").count() == 1
    assert client.post("/staff/invoices/new", data=new_invoice_form()).status_code == 303
    client.post(f"/staff/customers/{acme.id}/statement")
    assert sent(mailbox, "invoice_issued") == [] and sent(mailbox, "statement") == []
    assert notices.wants(Contact.get_by_id(lee.id), "quote_published")


def test_a_sites_invoice_also_reaches_that_sites_logins(client, mailbox, acme):
    """An invoice billed to the North plant reaches Lee (whole account) and Sam (North only)."""
    north = acme.sites.get()
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    form = new_invoice_form(site_id=str(north.id))
    assert client.post("/staff/invoices/new", data=form).status_code == 303
    messages = mailbox.wait_for(2)
    assert sorted(m["To"] for m in messages) == ["lee@acme.example", "sam@acme.example"]


def test_a_customer_without_the_portal_gets_no_new_invoice_email(client, mailbox, acme):
    """Its links would lead nowhere: the books send the invoice."""
    acme.portal_enabled = False
    acme.save()
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    assert client.post("/staff/invoices/new", data=new_invoice_form()).status_code == 303
    assert sent(mailbox, "invoice_issued") == []
