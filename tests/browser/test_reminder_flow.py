"""Payment reminders in Chromium (issue 18): a staff admin turns reminders on in Settings
(a bad schedule is refused next to its field, what was typed kept), the calendar moves across
an invoice's due date (time_machine), the worker's money pass emails the reminder once over
SMTP, and the emailed pay link is followed in the browser to pay the invoice through the test
checkout; the later steps then send nothing."""

import re
from datetime import date, datetime, time, timedelta

import time_machine
from playwright.sync_api import expect

from portal.models import Invoice, OutboxMessage
from portal.models_reminders import PaymentReminder
from portal.services import jobs, outbox, settings

from .. import factories
from .conftest import screenshot, settled

TODAY = date.today()
SCHEDULE = "Reminder days (from the due date)"


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12, 0))


def _reminders_to(mailbox, address: str) -> list:
    outbox.deliver_due()  # the mail loop's pass
    return [m for m in mailbox.to(address) if "Payment reminder" in m["Subject"]]


def test_staff_turn_reminders_on_and_the_emailed_pay_link_pays_the_invoice(page, mailbox):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    invoice, _ = factories.invoice(
        customer, number="INV-8001", total_cents=45_000, issue_date=TODAY - timedelta(days=29)
    )  # due tomorrow
    factories.staff(email="boss@example.com", admin=True)

    page.goto("/staff/login")
    page.get_by_label("Email").fill("boss@example.com")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))
    page.goto("/staff/settings/")
    expect(page.get_by_label("Email payment reminders")).not_to_be_checked()
    expect(page.get_by_label(SCHEDULE)).to_have_value("-3, 0, 7, 30")
    page.get_by_label("Email payment reminders").check()
    page.get_by_label(SCHEDULE).fill("0, 7, soon")
    page.get_by_role("button", name="Save settings").last.click()
    expect(page.get_by_text("“soon” is not a whole number of days")).to_be_visible()
    expect(page.get_by_label(SCHEDULE)).to_have_value("0, 7, soon")
    expect(page.get_by_label("Email payment reminders")).to_be_checked()
    assert settings.get("payment_reminders") is False
    settled(page)
    page.get_by_label(SCHEDULE).fill("0, 7")
    page.get_by_role("button", name="Save settings").last.click()
    expect(page.get_by_text("Settings saved")).to_be_visible()
    expect(page.get_by_label(SCHEDULE)).to_have_value("0, 7")
    screenshot(page, "staff-settings-reminders")
    assert settings.get("payment_reminders") is True
    assert settings.get("reminder_schedule") == [0, 7]

    # Today, the day before the due date, the worker has nothing to remind.
    with time_machine.travel(_noon(TODAY), tick=True):
        jobs.money_pass()
        assert _reminders_to(mailbox, "pat@acme.example") == []

    # The calendar moves to the due date: one reminder, however often the worker passes;
    # Pat follows its pay link and pays (still on that day, as Pat would).
    with time_machine.travel(_noon(invoice.due_date), tick=True):
        assert jobs.money_pass() == 1
        assert jobs.money_pass() == 0
        sent = _reminders_to(mailbox, "pat@acme.example")
        assert len(sent) == 1
        assert "INV-8001 is due today" in sent[0]["Subject"]
        text = sent[0].get_content()
        assert "Amount to pay: $450.00" in text
        link = re.search(r"http://127\.0\.0\.1:\d+/pay/link/\S+", text).group(0)

        page.goto(link)
        expect(page.get_by_role("heading", name="Invoice INV-8001")).to_be_visible()
        expect(page.get_by_label("Amount to pay")).to_have_value("450.00")
        settled(page)
        page.get_by_label("Your name").fill("Pat Buyer")
        page.get_by_label("Email for the receipt").fill("pat@acme.example")
        page.get_by_label("Card (test mode)").check()
        screenshot(page, "reminder-pay-link")
        page.get_by_role("button", name="Continue to payment").click()
        page.get_by_role("button", name="Pay $450.00").click()
        expect(page.get_by_role("heading", name=re.compile(r"Receipt R-\d+"))).to_be_visible()
        screenshot(page, "reminder-paid")

    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    # A week later: paid, so the 7-day step sends nothing.
    with time_machine.travel(_noon(invoice.due_date + timedelta(days=7)), tick=True):
        jobs.money_pass()
        assert len(_reminders_to(mailbox, "pat@acme.example")) == 1
    assert [r.step for r in PaymentReminder.select()] == [0]
    assert OutboxMessage.select().where(OutboxMessage.kind == "payment_reminder").count() == 1
