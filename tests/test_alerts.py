"""Office alerts (issue 18): each event alerts the staff logins that chose "email at once"
(over real SMTP), keeps an entry for those that chose the daily summary, and nothing for
"not at all"; the summary goes once per login and day, also with two workers at once; a
staff login edits only its own choices; the overview counts what waits, each tile linked to
its filtered list."""

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from portal.db import db, write_txn
from portal.models import AccessRequest, AuditLog, Case, OutboxMessage, Payment, Quote, Rfq
from portal.models_alerts import AlertChoice, AlertDigest, AlertEntry
from portal.services import alerts, cases, jobs, outbox, payments, settings
from portal.services.stripe_provider import Reversal

from . import factories
from .conftest import HX, login, staff_login
from .test_email_placeholders import guest_pays, payment_with_credit, register, with_admin
from .test_quotes import rfq_data

BASE = "http://localhost"


@pytest.fixture
def office(app):
    """An admin (defaults: everything at once), an agent who reads payments in the summary
    by default, and a switched-off login that never hears anything."""
    settings.update({"company_name": "Harbor Supply", "request_access": True})
    admin = factories.staff(email="boss@harbor.example", admin=True)
    agent = factories.staff(email="sam@harbor.example")
    gone = factories.staff(email="gone@harbor.example", admin=True)
    gone.active = False
    gone.save()
    return {"admin": admin, "agent": agent, "gone": gone}


@pytest.fixture
def acme(app):
    customer = factories.customer(name="Acme Manufacturing")
    return factories.portal_user(customer, email="pat@acme.example", first_name="Pat")


def alerts_to(mailbox, address: str) -> list:
    """The alert emails (not digests, not customer mail) that reached `address`."""
    outbox.deliver_due()  # a service called outside a request leaves its emails queued
    return [m for m in mailbox.to(address) if m["Auto-Submitted"] == "auto-generated"]


# --- each event, through the route or service that makes it in production ---------------


def ev_case_new(client, acme):
    login(client, acme.email)
    data = {"subject": "Pump leaks", "body": "It drips at the seal.", "request_key": "key-1"}
    assert client.post("/cases/new", data=data).status_code == 303
    case = Case.get()
    return (
        f"New case {case.number} from Acme Manufacturing: Pump leaks",
        "It drips at the seal.",
        f"{BASE}/staff/cases/{case.id}",
    )


def ev_invoice_question(client, acme):
    invoice, _ = factories.invoice(acme.contact.customer)
    login(client, acme.email)
    data = {"subject": "Wrong price", "message": "Line 2 is not our price."}
    assert client.post(f"/invoices/{invoice.public_id}/question", data=data).status_code == 303
    case = Case.get()
    return (
        f"Question about invoice {invoice.number} from Acme Manufacturing "
        f"(case {case.number}): Wrong price",
        "Line 2 is not our price.",
        f"{BASE}/staff/cases/{case.id}",
    )


def ev_case_reply(client, acme):
    case = cases.create_case(acme, "Pump leaks", "It drips.")
    AlertEntry.delete().execute()
    OutboxMessage.delete().execute()  # only the reply's alerts from here
    login(client, acme.email)
    reply = {"body": "Still dripping today."}
    assert client.post(f"/cases/{case.public_id}/reply", data=reply).status_code == 303
    return (
        f"Acme Manufacturing replied on case {case.number}: Pump leaks",
        "Still dripping today.",
        f"{BASE}/staff/cases/{case.id}",
    )


def ev_rfq_submitted(client, acme):
    login(client, acme.email)
    data = rfq_data(**{"lines-0-description": "Laser-cut bracket"})
    assert client.post("/quotes/requests/new", data=data).status_code == 303
    rfq = Rfq.get()
    return (
        f"Request for quote {rfq.number} from Acme Manufacturing (1 item)",
        "- Laser-cut bracket",
        f"{BASE}/staff/quotes/rfqs/{rfq.id}",
    )


def ev_quote_decided(client, acme):
    quote = factories.quote(acme.contact.customer, lines=[(None, "Bracket", 1000, 500)])
    login(client, acme.email)
    response = client.post(f"/quotes/{quote.public_id}/decline", data={"reason": "Too dear"})
    assert response.status_code == 303
    quote = Quote.get_by_id(quote.id)
    return (
        f"Quote {quote.number} declined by Acme Manufacturing",
        "Reason: Too dear",
        f"{BASE}/staff/quotes/{quote.id}",
    )


def ev_access_request(client, acme):
    data = {"name": "Dana Smith", "company": "Beta Foods", "email": "dana@beta.example"}
    assert client.post("/request-access/", data=data).status_code == 303
    return (
        "Access request from Dana Smith <dana@beta.example> for Beta Foods",
        "",
        f"{BASE}/staff/requests/",
    )


def ev_registration_waiting(client, acme):
    register(client, with_admin())
    return (
        "Robin Clerk <robin@acme.example> registered for Acme Manufacturing; "
        "the login waits for approval",
        "Their company's administrator is asked too",
        f"{BASE}/staff/requests/",
    )


def ev_payment_to_confirm(client, acme):
    invoice, code = factories.invoice(total_cents=40_000)
    guest_pays(client, invoice, code, "150.00", "offline")
    payment = Payment.get()
    return (
        f"Pat Payer announced a bank transfer or cheque of $150.00 ({payment.receipt_number})",
        f"- Invoice {invoice.number}: $150.00",
        f"{BASE}/staff/payments/{payment.id}",
    )


def ev_payment_problem(client, acme):
    _, payment = payment_with_credit(client.application)
    AlertEntry.delete().execute()
    OutboxMessage.delete().execute()
    dispute = Reversal(
        provider=payment.provider,
        reference=payment.provider_reference,
        amount_cents=payment.amount_cents,
        currency="USD",
        kind="dispute",
        event_id="evt_dispute_1",
    )
    payments.reverse_from_provider(dispute)
    return (
        f"Payment {payment.receipt_number} of $300.00 from {payment.customer.name}: "
        "Disputed by the payer",
        "",
        f"{BASE}/staff/payments/{payment.id}",
    )


EVENTS = {
    "case_new": ev_case_new,
    "invoice_question": ev_invoice_question,
    "case_reply": ev_case_reply,
    "rfq_submitted": ev_rfq_submitted,
    "quote_decided": ev_quote_decided,
    "access_request": ev_access_request,
    "registration_waiting": ev_registration_waiting,
    "payment_to_confirm": ev_payment_to_confirm,
    "payment_problem": ev_payment_problem,
}


def test_every_alert_kind_has_an_event_here():
    assert set(EVENTS) == set(alerts.KINDS)


@pytest.mark.parametrize("kind", list(EVENTS))
def test_each_event_emails_the_logins_that_want_it_at_once(client, mailbox, office, acme, kind):
    """Who gets it: the admin (default: at once) by email over SMTP, naming the business,
    with the absolute back-office link and the way to change the choice. Who does not: the
    agent who chose "not at all", a switched-off login; the customer's own mail is no alert."""
    alerts.save_choices(office["agent"], {kind: "none"})
    mailbox.clear()

    headline, detail, link = EVENTS[kind](client, acme)

    (message,) = alerts_to(mailbox, office["admin"].email)
    subject = message["Subject"].strip()
    assert subject.startswith("[Harbor Supply] ")
    assert headline[:150] in " ".join(subject.split())
    body = message.get_content().replace("\r\n", "\n")
    assert headline in " ".join(body.split())
    assert detail in body
    assert f"Open it: {link}\n" in body
    assert f"Change them: {BASE}/staff/alerts/" in body
    assert alerts_to(mailbox, office["agent"].email) == []
    assert alerts_to(mailbox, office["gone"].email) == []
    assert not AlertEntry.select().exists()
    row = OutboxMessage.get(OutboxMessage.to_addr == office["admin"].email)
    assert row.kind == f"alert:{kind}"


@pytest.mark.parametrize("kind", list(EVENTS))
def test_a_summary_choice_keeps_an_entry_and_sends_nothing_now(client, mailbox, office, acme, kind):
    """The agent who reads `kind` in the daily summary gets no email now: an entry waits."""
    alerts.save_choices(office["agent"], {kind: "digest"})
    alerts.save_choices(office["admin"], {kind: "none"})
    mailbox.clear()

    headline, _, link = EVENTS[kind](client, acme)

    assert alerts_to(mailbox, office["agent"].email) == []
    assert alerts_to(mailbox, office["admin"].email) == []
    (entry,) = AlertEntry.select()
    assert entry.staff_user_id == office["agent"].id and entry.kind == kind
    assert headline in entry.text and entry.link == link and entry.digest_id is None


def test_agent_defaults_conversations_at_once_payments_in_the_summary(app, office):
    """The documented defaults: admins everything at once; agents the conversations at
    once and access, registrations and payments in the daily summary."""
    assert set(alerts.choices(office["admin"]).values()) == {"now"}
    agent = alerts.choices(office["agent"])
    assert {k for k, v in agent.items() if v == "now"} == set(alerts.AGENT_AT_ONCE)
    assert {k for k, v in agent.items() if v == "digest"} == {
        "access_request",
        "registration_waiting",
        "payment_to_confirm",
        "payment_problem",
    }


def test_a_rolled_back_change_alerts_nobody(app, office, acme):
    """The alert belongs to the change's transaction: a change that fails sends nothing."""
    alerts.save_choices(office["agent"], {"case_new": "digest"})
    case = cases.create_case(acme, "Pump leaks", "It drips.")
    before = (OutboxMessage.select().count(), AlertEntry.select().count())
    with pytest.raises(ZeroDivisionError), write_txn():
        alerts.raise_("case_new", case)
        1 / 0  # noqa: B018
    assert (OutboxMessage.select().count(), AlertEntry.select().count()) == before
    with pytest.raises(RuntimeError):
        alerts.raise_("case_new", case)  # outside a transaction: refused


def test_a_login_with_the_office_address_gets_one_email_per_quote_decision(
    client, mailbox, acme, app
):
    """The quote's decision already goes to the business's contact address: a staff login
    with that same address is not emailed a second copy; another admin is."""
    settings.update({"contact_email": "office@harbor.example"})
    factories.staff(email="office@harbor.example", admin=True)
    other = factories.staff(email="boss@harbor.example", admin=True)
    mailbox.clear()
    ev_quote_decided(client, acme)
    outbox.deliver_due()
    assert len(mailbox.to("office@harbor.example")) == 1
    assert len(alerts_to(mailbox, other.email)) == 1


def test_b9_a_guests_line_breaks_never_reach_an_alerts_headers(app, mailbox, office):
    """B9: an access request whose stored name and company carry CR/LF and a Bcc line
    alerts with one clean subject line: no extra header, no extra recipient."""
    row = AccessRequest.create(
        name="Dana\r\nBcc: x@evil.example", company="Beta\nFoods", email="dana@beta.example"
    )
    with write_txn():
        alerts.raise_("access_request", row)
    (message,) = alerts_to(mailbox, office["admin"].email)
    assert message["Bcc"] is None and mailbox.to("x@evil.example") == []
    assert "\n" not in message["Subject"].strip() and "\r" not in message["Subject"]
    assert "Bcc: x@evil.example" in message["Subject"]  # kept as text on the one line


# --- the daily summary ----------------------------------------------------------------------


def tomorrow_at(hour: int) -> datetime:
    """`hour` o'clock tomorrow in the business's time zone (UTC in these tests), as UTC."""
    day = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def digests_to(mailbox, address: str) -> list:
    outbox.deliver_due()
    return [m for m in mailbox.to(address) if "Daily summary" in m["Subject"]]


def summary_choices(staff):
    alerts.save_choices(staff, dict.fromkeys(alerts.KINDS, "digest"))


def test_the_daily_summary_goes_once_with_what_happened(client, mailbox, office, acme):
    """Everything the agent chose to read in the summary arrives in one email after
    DIGEST_HOUR the next day, grouped by kind with its links and what waits now; the same
    day's further passes send nothing, and the entries are marked as sent."""
    summary_choices(office["agent"])
    alerts.save_choices(office["admin"], dict.fromkeys(alerts.KINDS, "none"))
    case_line, _, case_link = ev_case_new(client, acme)
    access_line, _, _ = ev_access_request(client, acme)
    mailbox.clear()

    assert alerts.send_digests(now=tomorrow_at(alerts.DIGEST_HOUR - 1)) == 0  # too early
    assert alerts.send_digests(now=datetime.now(UTC)) == 0  # today's wait for tomorrow
    assert alerts.send_digests(now=tomorrow_at(alerts.DIGEST_HOUR)) == 1

    (message,) = digests_to(mailbox, office["agent"].email)
    subject = message["Subject"].strip()
    assert subject.startswith("[Harbor Supply] Daily summary for ") and subject.endswith(
        ": 2 alerts"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content().replace("\r\n", "\n")
    assert "New support cases (1)" in body and "Access requests (1)" in body
    assert case_line in body and access_line in body and case_link in body
    assert "Waiting for the office now:" in body
    assert f"- 1 cases waiting for us: {BASE}/staff/cases/?status=open" in body
    assert f"- 1 access requests to decide: {BASE}/staff/requests/" in body
    assert f"{BASE}/staff/alerts/" in body
    assert digests_to(mailbox, office["admin"].email) == []

    # Again the same day, and later that day: nothing more.
    assert alerts.send_digests(now=tomorrow_at(alerts.DIGEST_HOUR)) == 0
    assert alerts.send_digests(now=tomorrow_at(23)) == 0
    jobs.money_pass()  # the worker's task list runs it too
    assert len(digests_to(mailbox, office["agent"].email)) == 1
    (digest,) = AlertDigest.select()
    assert digest.entries == 2
    assert not AlertEntry.select().where(AlertEntry.digest.is_null()).exists()


def test_a_day_without_alerts_sends_no_summary_and_old_ones_are_never_repeated(
    client, mailbox, office, acme
):
    summary_choices(office["agent"])
    assert alerts.send_digests(now=tomorrow_at(9)) == 0  # nothing happened: no email
    ev_access_request(client, acme)
    assert alerts.send_digests(now=tomorrow_at(9)) == 1
    day_after = tomorrow_at(9) + timedelta(days=1)
    assert alerts.send_digests(now=day_after) == 0  # the first day's entry went already
    assert len(digests_to(mailbox, office["agent"].email)) == 1


def test_a_switched_off_login_gets_no_summary(client, mailbox, office, acme):
    summary_choices(office["agent"])
    ev_access_request(client, acme)
    office["agent"].active = False
    office["agent"].save()
    assert alerts.send_digests(now=tomorrow_at(9)) == 0
    assert digests_to(mailbox, office["agent"].email) == []
    assert not AlertEntry.select().exists()


def _digest_pass(app, now):
    with app.app_context():
        db.connect(reuse_if_open=True)
        try:
            return alerts.send_digests(now=now)
        finally:
            db.close()


def test_two_workers_at_once_send_each_summary_once(app, client, mailbox, office, acme):
    """Two workers' passes at the same moment (threads, each with its own connection):
    each login gets exactly one summary (the unique login-and-day row)."""
    summary_choices(office["agent"])
    summary_choices(office["admin"])
    ev_case_new(client, acme)
    ev_access_request(client, acme)
    mailbox.clear()
    when = tomorrow_at(alerts.DIGEST_HOUR)
    barrier = threading.Barrier(2)
    results = []

    def run():
        barrier.wait()
        results.append(_digest_pass(app, when))

    threads = [threading.Thread(target=run) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]

    assert sorted(results) in ([0, 2], [1, 1])
    assert AlertDigest.select().count() == 2
    assert OutboxMessage.select().where(OutboxMessage.kind == "alert_digest").count() == 2
    assert len(digests_to(mailbox, office["agent"].email)) == 1
    assert len(digests_to(mailbox, office["admin"].email)) == 1
    assert _digest_pass(app, when) == 0


# --- My alerts ------------------------------------------------------------------------------


def choice_form(**changes) -> dict:
    data = dict.fromkeys(alerts.KINDS, "now")
    data.update(changes)
    return data


def test_my_alerts_shows_the_logins_choices_and_saves_them(client, office):
    staff_login(client, office["agent"].email)
    page = client.get("/staff/alerts/").get_data(as_text=True)
    assert "My alerts" in page and office["agent"].email in page
    assert re.search(r'<input checked[^>]*name="payment_problem"[^>]*value="digest"', page)
    home = client.get("/staff/").get_data(as_text=True)
    assert 'href="/staff/alerts/"' in home

    response = client.post("/staff/alerts/", data=choice_form(case_reply="none"))
    assert response.status_code == 303 and response.headers["Location"] == "/staff/alerts/"
    assert alerts.choices(office["agent"])["case_reply"] == "none"
    assert alerts.choices(office["agent"])["payment_problem"] == "now"
    assert alerts.choices(office["admin"])["case_reply"] == "now"  # only its own
    entry = AuditLog.get(AuditLog.action == "alerts.choices_changed")
    assert "case_reply" in entry.detail


def test_a_wrong_choice_is_refused_next_to_its_group_and_keeps_the_rest(client, office):
    staff_login(client, office["agent"].email)
    data = choice_form(case_reply="sometimes", case_new="none")
    response = client.post("/staff/alerts/", data=data, headers=HX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "<html" not in page  # the form block for htmx
    assert 'id="case_reply-error"' in page
    assert re.search(r'<input checked[^>]*name="case_new"[^>]*value="none"', page)
    assert not AlertChoice.select().exists()  # nothing half-written


def test_my_alerts_needs_a_staff_login(client, acme, office):
    """E5: guests and customers are sent to the staff sign-in; there is no other login's
    page to reach (the page has no id)."""
    for method in ("get", "post"):
        response = getattr(client, method)("/staff/alerts/")
        assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    login(client, acme.email)
    response = client.post("/staff/alerts/", data=choice_form(case_new="none"))
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    assert not AlertChoice.select().exists()


# --- the overview -----------------------------------------------------------------------------


def tile(page: str, label: str) -> tuple[str, str]:
    found = re.search(
        r'href="([^"]*)"[^>]*>\s*<span class="tile-value">(\d+)</span>'
        r'<span class="tile-label">' + re.escape(label),
        page,
    )
    assert found, label
    return found.group(1).replace("&amp;", "&"), found.group(2)


def test_the_overview_counts_everything_waiting_with_links(client, office, acme):
    cases.create_case(acme, "Pump leaks", "It drips.")
    answered = cases.create_case(acme, "Invoice copy", "Please resend.")
    Case.update(status="waiting").where(Case.id == answered.id).execute()  # on the customer
    factories.rfq(acme.contact.customer)
    ev_access_request(client, acme)
    factories.portal_user(acme.contact.customer, status="pending", password=None)
    factories.payment(acme.contact.customer, status="pending")
    outbox.record_unsendable("bad address", "Hi", "Body", "case_update", "", "Not sent: bad")
    staff_login(client, office["agent"].email)

    page = client.get("/staff/").get_data(as_text=True)

    assert tile(page, "support cases waiting for us") == ("/staff/cases/?status=open", "1")
    assert tile(page, "requests for quote waiting") == ("/staff/quotes/?status=submitted", "1")
    assert tile(page, "access requests to decide") == ("/staff/requests/", "1")
    assert tile(page, "registrations waiting for approval") == ("/staff/requests/", "1")
    assert tile(page, "offline payments to confirm") == ("/staff/payments/?status=pending", "1")
    assert tile(page, "emails that could not be sent") == ("/staff/outbox/?status=failed", "1")
