"""Payment reminders (issue 18): staff set the schedule in Settings; the worker emails each
step over real SMTP to the billing contacts who want reminders, never about paid, void, fully
pending or autopay-covered invoices, each (invoice, step) once, also with two workers at once
(SQLite and PostgreSQL); a long-overdue invoice gets only its latest step; the emailed pay
link opens the invoice for paying."""

import json
import re
import threading
from datetime import date, datetime, time, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine

from portal.db import db
from portal.filters import datefmt
from portal.models import (
    AuditLog,
    Autopay,
    AutopayCharge,
    Contact,
    Invoice,
    OutboxMessage,
    SavedMethod,
)
from portal.models_reminders import PaymentReminder
from portal.services import jobs, notices, outbox, reminders, settings
from portal.web import absolute_url

from . import factories
from .conftest import staff_login
from .test_email_placeholders import guest_pays

DUE = date.today() + timedelta(days=10)
SUBJECT = "Payment reminder from Harbor Supply: invoice {number} {when}"


@pytest.fixture
def acme(app):
    """Reminders on with the default schedule; Acme's billing login Pat, a second billing
    contact Lee (no login) and Sam, a login who is not a billing contact."""
    settings.update({"company_name": "Harbor Supply", "payment_reminders": True})
    customer = factories.customer(name="Acme Manufacturing")
    pat = factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    lee = Contact.create(customer=customer, email="lee@acme.example", first_name="Lee")
    sam = factories.portal_user(customer, email="sam@acme.example", billing=False)
    return {"customer": customer, "pat": pat.contact, "lee": lee, "sam": sam.contact}


def an_invoice(acme, total_cents=120_000, due=DUE, **fields):
    invoice, code = factories.invoice(
        acme["customer"],
        total_cents=total_cents,
        issue_date=due - timedelta(days=30),
        **fields,
    )
    invoice.code = code
    return invoice


def _delivered(mailbox) -> list:
    """Every reminder queued so far, once it crossed the SMTP server."""
    outbox.deliver_due()
    ids = {
        row.message_id
        for row in OutboxMessage.select().where(OutboxMessage.kind == "payment_reminder")
    }
    return [m for m in mailbox.messages if m["Message-ID"] in ids]


def subject(message) -> str:
    """The subject as read (a long one arrives folded onto a second header line)."""
    return " ".join(message["Subject"].split())


def to(mailbox, address: str) -> list:
    return [m for m in _delivered(mailbox) if m["To"] == address]


def states(invoice) -> dict:
    return {
        row.step: row.state
        for row in PaymentReminder.select().where(PaymentReminder.invoice == invoice.id)
    }


# --- every step, on its day, once -----------------------------------------------------------


@pytest.mark.parametrize(
    "step, when",
    [
        (-3, "is due in 3 days"),
        (0, "is due today"),
        (7, "is overdue by 7 days"),
        (30, "is overdue by 30 days"),
    ],
)
def test_each_step_is_emailed_on_its_day_once(app, mailbox, acme, step, when):
    """The day before a step nothing new goes; on its day the billing contacts get it with
    the invoice, the amount, the due date, the pay link and the one-click unsubscribe."""
    invoice = an_invoice(acme)
    day = DUE + timedelta(days=step)
    reminders.run_due(today=day - timedelta(days=1))
    before = len(_delivered(mailbox))
    assert reminders.run_due(today=day) == 1
    assert reminders.run_due(today=day) == 0  # the same day again: nothing more
    assert reminders.run_due(today=day + timedelta(days=1)) == 0
    sent = _delivered(mailbox)
    assert len(sent) == before + 2  # Pat and Lee, the billing contacts
    pat = [m for m in to(mailbox, "pat@acme.example") if when in subject(m)]
    assert len(pat) == 1
    message = pat[0]
    assert subject(message) == SUBJECT.format(number=invoice.number, when=when)
    text = message.get_content()
    assert f"Invoice {invoice.number} to Acme Manufacturing {when}." in text
    assert "Amount to pay: $1,200.00" in text
    assert f"Due date: {datefmt(DUE)}" in text
    assert re.search(r"http://localhost/pay/link/\S+", text)
    assert "Doorstep" not in text and "portal" not in text.lower()
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("http://localhost/unsubscribe/")
    assert unsubscribe in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert states(invoice)[step] == "sent"
    row = PaymentReminder.get(PaymentReminder.step == step)
    assert row.sent_to.split("\n") == ["pat@acme.example", "lee@acme.example"]
    entry = AuditLog.get(
        (AuditLog.action == "invoice.reminded")
        & (AuditLog.object_id == str(invoice.id))
        & AuditLog.detail.contains(f'"step": {step}')
    )
    assert json.loads(entry.detail)["to"] == ["pat@acme.example", "lee@acme.example"]


def test_the_whole_schedule_sends_four_reminders_one_per_step(app, mailbox, acme):
    invoice = an_invoice(acme)
    for offset in range(-5, 45):
        reminders.run_due(today=DUE + timedelta(days=offset))
    subjects = [subject(m) for m in to(mailbox, "pat@acme.example")]
    assert subjects == [
        SUBJECT.format(number=invoice.number, when=when)
        for when in (
            "is due in 3 days",
            "is due today",
            "is overdue by 7 days",
            "is overdue by 30 days",
        )
    ]
    assert states(invoice) == {-3: "sent", 0: "sent", 7: "sent", 30: "sent"}


def test_a_long_overdue_invoice_gets_only_its_latest_step(app, mailbox, acme):
    """An invoice imported already 40 days overdue (or reminders turned on late): one email,
    the 30-day step; the earlier steps are recorded as skipped, never sent afterwards."""
    invoice = an_invoice(acme, due=date.today() - timedelta(days=40))
    today = date.today()
    assert reminders.run_due(today=today) == 1
    assert reminders.run_due(today=today + timedelta(days=1)) == 0
    pat = to(mailbox, "pat@acme.example")
    assert [subject(m) for m in pat] == [
        SUBJECT.format(number=invoice.number, when="is overdue by 40 days")
    ]
    assert states(invoice) == {-3: "skipped", 0: "skipped", 7: "skipped", 30: "sent"}


def test_staff_see_an_invoices_reminders_on_its_page(app, client, mailbox, acme):
    """The back office shows what the schedule did with an invoice: each step, when, what
    was left to pay and to whom it went; an invoice with none says so."""
    invoice = an_invoice(acme, due=date.today() - timedelta(days=40))
    untouched = an_invoice(acme, due=date.today() + timedelta(days=20))
    reminders.run_due(today=date.today())
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    html = client.get(f"/staff/invoices/{invoice.id}").get_data(as_text=True)
    history = html[html.index("Payment reminders") :]
    assert "30 days after due" in history and "Sent" in history
    assert "pat@acme.example" in history and "$1,200.00" in history
    assert history.count("Skipped for a later step") == 3
    assert "3 days before due" in history and "On the due date" in history
    html = client.get(f"/staff/invoices/{untouched.id}").get_data(as_text=True)
    assert "No reminder has been sent for this invoice." in html
    assert "/staff/settings/" not in html.split("No reminder", 1)[1]  # an agent: no settings


def test_reminders_are_off_until_staff_turn_them_on(app, mailbox, acme):
    settings.update({"payment_reminders": False})
    invoice = an_invoice(acme)
    assert reminders.run_due(today=DUE) == 0
    assert not PaymentReminder.select().exists()
    settings.update({"payment_reminders": True, "reminder_schedule": [0, 14]})
    assert reminders.run_due(today=DUE + timedelta(days=3)) == 1
    assert states(invoice) == {0: "sent"}
    assert reminders.run_due(today=DUE + timedelta(days=14)) == 1
    assert states(invoice) == {0: "sent", 14: "sent"}


# --- who gets them, who does not ------------------------------------------------------------


def test_only_billing_contacts_who_want_reminders_get_them(app, client, mailbox, acme):
    """Sam is no billing contact; Lee unsubscribes with the one-click link of the first
    reminder; Pat turns reminders off on the choices; a disabled login gets nothing."""
    gone = factories.portal_user(acme["customer"], email="gone@acme.example", status="disabled")
    an_invoice(acme)
    reminders.run_due(today=DUE - timedelta(days=3))
    assert len(to(mailbox, "pat@acme.example")) == 1
    assert len(to(mailbox, "lee@acme.example")) == 1
    assert to(mailbox, "sam@acme.example") == []
    assert to(mailbox, gone.contact.email) == []

    first = to(mailbox, "lee@acme.example")[0]
    path = urlsplit(first["List-Unsubscribe"].strip("<>")).path
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 204
    reminders.run_due(today=DUE)
    assert len(to(mailbox, "lee@acme.example")) == 1
    assert len(to(mailbox, "pat@acme.example")) == 2

    notices.set_choice(acme["pat"], "reminder", False)
    assert reminders.run_due(today=DUE + timedelta(days=7)) == 1
    assert len(to(mailbox, "pat@acme.example")) == 2
    row = PaymentReminder.get(PaymentReminder.step == 7)
    assert row.state == "sent" and row.sent_to == ""  # recorded: not tried again
    assert reminders.run_due(today=DUE + timedelta(days=7)) == 0


def test_a_site_invoice_reminds_only_contacts_of_that_site(app, mailbox, acme):
    north = factories.site(acme["customer"], name="North")
    south = factories.site(acme["customer"], name="South")
    factories.portal_user(acme["customer"], email="kim@acme.example", sites=[south])
    an_invoice(acme, site=north)
    reminders.run_due(today=DUE)
    assert len(to(mailbox, "pat@acme.example")) == 1
    assert to(mailbox, "kim@acme.example") == []


def autopay_on(acme, max_cents=500_000, state=None, invoice=None):
    """Autopay on for Acme (a saved card row, as Stripe's setup leaves it)."""
    method = SavedMethod.create(
        customer=acme["customer"], method_id="pm_test", brand="visa", last4="4242"
    )
    Autopay.create(
        customer=acme["customer"],
        method=method,
        max_cents=max_cents,
        starts_on=date(2000, 1, 1),
    )
    if state:
        AutopayCharge.create(
            customer=acme["customer"], invoice=invoice, amount_cents=1, state=state
        )


def pay_in_full_offline(client, invoice):
    """A guest announces a bank transfer of the whole amount (pending until staff confirm)."""
    guest_pays(client, invoice, invoice.code, f"{invoice.balance_cents / 100:.2f}", "offline")


def test_no_reminder_for_paid_void_or_fully_pending_invoices(app, client, mailbox, acme):
    paid = an_invoice(acme, total_cents=50_000, paid_cents=50_000)
    void = an_invoice(acme, status="void")
    pending = an_invoice(acme, total_cents=30_000)
    pay_in_full_offline(client, pending)
    partly = an_invoice(acme, total_cents=40_000)
    guest_pays(client, partly, partly.code, "150.00", "offline")

    assert reminders.run_due(today=DUE) == 2  # the pending one is held, the partly one sent
    assert states(paid) == {} and states(void) == {}
    assert states(pending) == {-3: "skipped", 0: "held"}
    held = PaymentReminder.get(
        (PaymentReminder.invoice == pending.id) & (PaymentReminder.step == 0)
    )
    assert held.note == "Pending payments cover it in full."
    sent = to(mailbox, "pat@acme.example")
    assert [subject(m) for m in sent] == [SUBJECT.format(number=partly.number, when="is due today")]
    assert "Amount to pay: $250.00" in sent[0].get_content()  # what the transfer leaves


def with_autopay_provider(app):
    """Autopay needs the Stripe provider switched on (no card is charged in these tests)."""
    app.config["PAYMENT_PROVIDERS"] = [*app.config["PAYMENT_PROVIDERS"], "stripe"]


@pytest.mark.parametrize(
    "max_cents, charge, reminded",
    [
        (500_000, None, False),  # autopay will charge it on the due date
        (500_000, "retry", False),  # a failed charge autopay tries again
        (500_000, "failed", True),  # autopay gave up on it
        (50_000, None, True),  # over the autopay maximum: the customer pays it
    ],
)
def test_autopay_holds_reminders_only_while_it_will_charge(
    app, mailbox, acme, max_cents, charge, reminded
):
    with_autopay_provider(app)
    invoice = an_invoice(acme)
    autopay_on(acme, max_cents=max_cents, state=charge, invoice=invoice)

    assert reminders.run_due(today=DUE - timedelta(days=3)) == 1
    assert len(to(mailbox, "pat@acme.example")) == (1 if reminded else 0)
    assert states(invoice) == {-3: "sent" if reminded else "held"}


def test_autopay_that_stops_lets_the_next_step_remind(app, mailbox, acme):
    with_autopay_provider(app)
    invoice = an_invoice(acme)
    autopay_on(acme)
    reminders.run_due(today=DUE - timedelta(days=3))
    Autopay.update(active=False).execute()
    reminders.run_due(today=DUE)
    assert states(invoice) == {-3: "held", 0: "sent"}
    assert len(to(mailbox, "pat@acme.example")) == 1


def test_a_customer_with_the_portal_off_gets_no_reminders(app, mailbox, acme):
    acme["customer"].portal_enabled = False
    acme["customer"].save()
    an_invoice(acme)
    assert reminders.run_due(today=DUE) == 0
    assert _delivered(mailbox) == []


# --- never twice ----------------------------------------------------------------------------


def _worker_pass(app, day):
    with app.app_context():
        db.connect(reuse_if_open=True)
        try:
            return reminders.run_due(today=day)
        finally:
            db.close()


def test_two_workers_at_once_send_each_reminder_once(app, mailbox, acme):
    """Two workers' passes at the same moment (threads, each with its own connection): each
    invoice's step is emailed once, whichever gets there first (SQLite and PostgreSQL)."""
    invoices = [an_invoice(acme, total_cents=10_000 * (n + 1)) for n in range(4)]
    barrier = threading.Barrier(2)
    results = []

    def run():
        barrier.wait()
        results.append(_worker_pass(app, DUE))

    threads = [threading.Thread(target=run) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]

    assert sum(results) == 4
    assert PaymentReminder.select().where(PaymentReminder.state == "sent").count() == 4
    assert OutboxMessage.select().where(OutboxMessage.kind == "payment_reminder").count() == 8
    pat = to(mailbox, "pat@acme.example")
    assert sorted(subject(m) for m in pat) == sorted(
        SUBJECT.format(number=i.number, when="is due today") for i in invoices
    )
    assert _worker_pass(app, DUE) == 0


def test_the_worker_runs_reminders_in_its_money_pass(app, mailbox, acme):
    """`flask worker` schedules reminders with the other money tasks, after autopay charged,
    on the business's calendar day."""
    names = [task.__module__ + "." + task.__name__ for task in jobs.MONEY_TASKS]
    assert names.index("portal.services.reminders.run_due") > names.index(
        "portal.services.autopay.run_due"
    )
    invoice = an_invoice(acme)
    with time_machine.travel(datetime.combine(DUE - timedelta(days=4), time(12)), tick=False):
        jobs.money_pass()
        assert states(invoice) == {}
    with time_machine.travel(datetime.combine(DUE, time(12)), tick=False):
        assert jobs.money_pass() >= 1
        assert jobs.money_pass() == 0
        assert len(to(mailbox, "pat@acme.example")) == 1  # queued "then", delivered then
    assert states(invoice) == {-3: "skipped", 0: "sent"}


# --- the pay link ---------------------------------------------------------------------------


def test_the_emailed_pay_link_opens_the_invoice_for_paying(app, client, mailbox, acme):
    invoice = an_invoice(acme)
    reminders.run_due(today=DUE)
    text = to(mailbox, "pat@acme.example")[0].get_content()
    link = re.search(r"http://localhost(/pay/link/\S+)", text).group(1)
    opened = client.get(link)
    assert opened.status_code == 302
    assert opened.headers["Location"] == "/pay/invoice"
    page = client.get("/pay/invoice")
    assert page.status_code == 200
    assert f"Invoice {invoice.number}" in page.text
    assert 'value="1200.00"' in page.text  # the amount to pay, ready

    # Paid through that link: the later steps send nothing.
    response = client.post(
        "/pay/invoice",
        data={
            "amount": "1200.00",
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": "test-checkout",
        },
    )
    assert response.status_code == 303
    back = client.post(response.headers["Location"], data={"outcome": "pay"})
    assert back.status_code == 303
    client.get(back.headers["Location"])
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    assert reminders.run_due(today=DUE + timedelta(days=7)) == 0
    assert states(invoice) == {-3: "skipped", 0: "sent"}


def test_with_quick_pay_off_the_link_is_the_invoice_page(app, mailbox, acme):
    settings.update({"quick_pay_enabled": False})
    invoice = an_invoice(acme)
    reminders.run_due(today=DUE)
    text = to(mailbox, "pat@acme.example")[0].get_content()
    assert absolute_url("billing.show", invoice_id=invoice.id) in text
    assert "/pay/link/" not in text


# --- settings ---------------------------------------------------------------------------------


URL = "/staff/settings/"


@pytest.fixture
def admin(client):
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")


def settings_form(**overrides) -> dict:
    from .test_staff_settings import form_data

    return form_data(**overrides)


def test_staff_turn_reminders_on_with_a_schedule(client, admin):
    page = client.get(URL).text
    assert "Payment reminders" in page
    assert 'name="reminder_schedule"' in page and 'value="-3, 0, 7, 30"' in page
    assert not re.search(r'<input checked[^>]*name="payment_reminders"', page)
    data = settings_form(payment_reminders="y", reminder_schedule="30, -5 0,+7")
    response = client.post(URL, data=data)
    assert response.status_code == 303
    assert settings.get("payment_reminders") is True
    assert settings.get("reminder_schedule") == [-5, 0, 7, 30]
    page = client.get(URL).text
    assert 'value="-5, 0, 7, 30"' in page
    assert re.search(r'<input checked[^>]*name="payment_reminders"', page)
    audited = {e.object_id for e in AuditLog.select().where(AuditLog.action == "settings.changed")}
    assert {"payment_reminders", "reminder_schedule"} <= audited
    # A page without the reminder fields (an older one) leaves them as they are.
    assert client.post(URL, data=settings_form()).status_code == 303
    assert settings.get("payment_reminders") is True


@pytest.mark.parametrize(
    "typed, message",
    [
        ("", "Give at least one day"),
        ("-3, soon, 7", "“soon” is not a whole number of days"),
        ("0, 400", "to 365 (a year after it)"),
        ("-90, 0", "Each day is from -60"),
        (",".join(str(d) for d in range(11)), "At most 10 reminders"),
    ],
)
def test_a_bad_schedule_is_422_next_to_its_field_and_keeps_what_was_typed(
    client, admin, typed, message
):
    data = settings_form(
        payment_reminders="y", reminder_schedule=typed, company_name="Typed Company"
    )
    response = client.post(URL, data=data)
    assert response.status_code == 422
    html = response.text
    assert message in html
    assert 'id="reminder_schedule-error"' in html
    assert f'value="{typed}"' in html or (not typed and 'name="reminder_schedule"' in html)
    assert 'value="Typed Company"' in html
    assert settings.get("payment_reminders") is False
    assert settings.get("reminder_schedule") == [-3, 0, 7, 30]


def test_the_setting_itself_refuses_a_bad_schedule(app):
    for bad in ([], [7, 0], [0, 0], [0.5], [500]):
        with pytest.raises(ValueError):
            settings.save({"reminder_schedule": bad})


def test_migration_0040_builds_exactly_the_reminder_model(app):
    """STYLE 5: the table migration 0040 builds matches portal/models_reminders.py."""
    from playhouse.schema_diff import diff_models

    from portal.models_reminders import ALL_REMINDER_MODELS

    diff = diff_models(db.obj, ALL_REMINDER_MODELS)
    assert not diff, diff
