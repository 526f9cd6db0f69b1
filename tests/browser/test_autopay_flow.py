"""Autopay in Chromium (issue 14): a company admin saves a card on Stripe's page (the suite's
own Stripe), turns autopay on with a maximum and "on the due date", then the calendar moves
on (time_machine) and the worker's money pass charges exactly the invoices that fell due,
once each; the admin sees the charges and the balances."""

from datetime import date, datetime, time, timedelta

import time_machine
from playwright.sync_api import expect

from portal.models import Invoice, Payment
from portal.services import jobs

from .. import factories, stripe_fixtures
from .conftest import screenshot

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
live_server = stripe_fixtures.stripe_live_server

TODAY = date.today()


def _worker_pass_on(day: date, stripe_env) -> int:
    """The worker's money pass as it runs at noon on `day` (the clock moved there)."""
    with time_machine.travel(datetime.combine(day, time(12, 0)), tick=True):
        done = jobs.money_pass()
        stripe_env.wait_idle()  # Stripe's own events for the charges arrive, signed "then"
    return done


def test_save_a_card_turn_autopay_on_and_the_worker_charges_due_invoices_once(
    page, stripe_env, live_server
):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    overdue, _ = factories.invoice(
        customer, number="INV-7000", total_cents=12_000, issue_date=TODAY - timedelta(40)
    )
    first, _ = factories.invoice(
        customer, number="INV-7001", total_cents=30_000, issue_date=TODAY - timedelta(25)
    )
    second, _ = factories.invoice(
        customer, number="INV-7002", total_cents=45_000, issue_date=TODAY - timedelta(10)
    )

    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My account").click()
    page.get_by_label("I allow Northwind Services to save this card", exact=False).check()
    page.get_by_role("button", name="Save a card").click()
    page.get_by_role("button", name="Save card").click()  # on Stripe's page
    expect(page.get_by_text("Visa •••• 4242 is saved.")).to_be_visible()

    page.get_by_role("link", name="Autopay").click()
    expect(page.get_by_role("heading", name="Autopay is off")).to_be_visible()
    expect(page.get_by_text("1 invoice already due is not charged by autopay")).to_be_visible()
    page.get_by_label("Most to charge for one invoice").fill("1000")
    page.get_by_role("button", name="Turn autopay on").click()  # without the authorisation
    expect(page.get_by_text("Tick the box to authorise the charges.")).to_be_visible()
    expect(page.get_by_label("Most to charge for one invoice")).to_have_value("1000")
    page.get_by_label("On the due date").check()
    page.get_by_label("I authorise Northwind Services to charge", exact=False).check()
    page.get_by_role("button", name="Turn autopay on").click()
    expect(page.get_by_text("Autopay is on: Visa •••• 4242, up to $1,000.00")).to_be_visible()
    expect(page.get_by_role("heading", name="Autopay is on")).to_be_visible()
    screenshot(page, "autopay-on")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "autopay-on-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Today nothing is due for autopay (INV-7000 was due before it was turned on).
    assert _worker_pass_on(TODAY, stripe_env) == 0
    # INV-7001's due date: it alone is charged, once, however often the worker passes.
    assert _worker_pass_on(first.due_date, stripe_env) == 1
    assert _worker_pass_on(first.due_date, stripe_env) == 0
    assert _worker_pass_on(first.due_date + timedelta(days=1), stripe_env) == 0
    assert Invoice.get_by_id(first.id).balance_cents == 0
    assert Invoice.get_by_id(second.id).balance_cents == 45_000
    page.reload()
    charges = page.get_by_role("table", name="Invoices autopay charged or tried to charge")
    expect(charges.get_by_role("row")).to_have_count(2)  # the header and INV-7001
    expect(charges.get_by_role("row", name="INV-7001")).to_contain_text("Paid")
    screenshot(page, "autopay-charged")

    # INV-7002's due date: charged too. INV-7000 never is.
    assert _worker_pass_on(second.due_date, stripe_env) == 1
    assert _worker_pass_on(second.due_date + timedelta(days=30), stripe_env) == 0
    page.goto("/invoices/?status=all")
    expect(page.get_by_role("row", name="INV-7002")).to_contain_text("Paid")
    expect(page.get_by_role("row", name="INV-7001")).to_contain_text("Paid")
    expect(page.get_by_role("row", name="INV-7000")).to_contain_text("$120.00")
    screenshot(page, "autopay-invoices")
    assert Invoice.get_by_id(overdue.id).balance_cents == 12_000
    assert sorted(p.amount_cents for p in Payment.select()) == [30_000, 45_000]
    intents = stripe_env.client().v1.payment_intents.list().data
    assert sorted(i.amount for i in intents if i.status == "succeeded") == [30_000, 45_000]
