"""Money tells the truth across features, in Chromium (issue 13): a customer pays two invoices
by bank transfer and sees both pending, is warned when paying one again and pays only the
rest, staff confirm a smaller amount than was sent for the transfer, a later transfer
arrives larger than meant, and the customer sees the right balances and the credit and
applies it."""

import re
from datetime import date, timedelta

from playwright.sync_api import expect

from portal.models import Invoice, Payment

from .. import factories
from .conftest import screenshot, settled


def _sign_in(page, email, password=factories.PASSWORD, staff=False):
    page.goto("/staff/login" if staff else "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _staff_confirm(browser, live_server, receipt: str, amount: str) -> None:
    """Staff, in their own browser, find the transfer, see what it was meant for, and
    confirm what arrived."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    office = context.new_page()
    _sign_in(office, "agent@example.com", staff=True)
    expect(office.get_by_role("heading", name="Needs attention")).to_be_visible()
    office.get_by_role("link", name="offline payments to confirm").click()
    office.get_by_role("link", name=receipt).click()
    expect(office.get_by_role("heading", name="What the payer meant it for")).to_be_visible()
    office.get_by_label("Amount received").fill(amount)
    screenshot(office, f"money-staff-confirm-{receipt}")
    office.get_by_role("button", name="Confirm payment received").click()
    expect(office.get_by_text("Payment confirmed and applied.")).to_be_visible()
    context.close()


def test_pending_warned_short_and_over_confirmations_and_credit(app, page, browser, live_server):
    customer = factories.customer(name="Acme Manufacturing", email="ap@acme.example")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    factories.staff(email="agent@example.com")
    today = date.today()
    for number, age, total in (
        ("INV-3001", 20, 30_000),
        ("INV-3002", 10, 50_000),
        ("INV-3003", 2, 40_000),
    ):
        factories.invoice(
            customer, number=number, total_cents=total, issue_date=today - timedelta(days=age)
        )

    _sign_in(page, "pat@acme.example")
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()

    # Two invoices by bank transfer: INV-3001 in full, $200 of INV-3002.
    page.get_by_label("Select INV-3001").check()
    page.get_by_label("Select INV-3002").check()
    page.get_by_label("Amount to pay on INV-3002").fill("200.00")
    expect(page.locator("#pay-total")).to_contain_text("$500.00")
    page.get_by_role("button", name="Review and pay selected").click()
    expect(page.get_by_role("heading", name="Pay $500.00")).to_be_visible()
    page.get_by_label("Bank transfer or cheque").check()
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_text("awaiting your transfer")).to_be_visible()
    transfer = Payment.get(Payment.status == "pending").receipt_number

    # Both invoices are marked pending in the list and on the dashboard.
    page.goto("/invoices/")
    first = page.get_by_role("row").filter(has_text="INV-3001")
    second = page.get_by_role("row").filter(has_text="INV-3002")
    expect(first).to_contain_text("$300.00 pending")
    expect(second).to_contain_text("$200.00 pending")
    expect(first.get_by_role("checkbox")).to_have_count(0)  # nothing more to pay on it
    screenshot(page, "money-invoices-pending", full_page=False)
    page.goto("/")
    expect(page.locator(".tile").filter(has_text="Pending")).to_contain_text("$500.00")
    screenshot(page, "money-dashboard-pending")

    # Paying INV-3002 again: warned, and offered only what is not already on its way.
    page.goto("/invoices/")
    page.get_by_role("link", name="INV-3002").click()
    expect(
        page.get_by_text(f"$200.00 pending — bank transfer or cheque {transfer}")
    ).to_be_visible()
    expect(page.get_by_text("You can pay the rest: $300.00.")).to_be_visible()
    screenshot(page, "money-invoice-pending")
    page.get_by_role("button", name="Pay $300.00").click()
    expect(page.get_by_role("heading", name="Pay $300.00")).to_be_visible()
    page.get_by_label("Card (test mode)").check()
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Pay $300.00").click()
    expect(page.get_by_role("heading", name=re.compile(r"Receipt R-"))).to_be_visible()

    # Staff: only $450.00 of the $500.00 transfer arrived: INV-3001 (oldest) first.
    _staff_confirm(browser, live_server, transfer, "450.00")
    assert Invoice.get(Invoice.number == "INV-3001").balance_cents == 0
    assert Invoice.get(Invoice.number == "INV-3002").balance_cents == 5_000

    # A transfer for INV-3003 arrives $50.00 larger than meant: kept as credit.
    page.goto("/invoices/")
    page.get_by_label("Select INV-3003").check()
    page.get_by_role("button", name="Review and pay selected").click()
    page.get_by_label("Bank transfer or cheque").check()
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_text("awaiting your transfer")).to_be_visible()
    second_transfer = Payment.get(Payment.status == "pending").receipt_number
    _staff_confirm(browser, live_server, second_transfer, "450.00")

    # The customer sees the right balances and the credit everywhere.
    page.goto("/")
    expect(page.locator(".tile").filter(has_text="Open balance")).to_contain_text("$50.00")
    expect(page.locator(".tile").filter(has_text="Credit available")).to_contain_text("$50.00")
    screenshot(page, "money-dashboard-credit")
    page.goto("/invoices/?status=all")
    expect(page.get_by_role("row").filter(has_text="INV-3002")).to_contain_text("$50.00")
    expect(page.get_by_role("row").filter(has_text="INV-3001")).to_contain_text("Paid")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Statements").click()
    expect(page.locator(".stmt-sum .closing")).to_contain_text("$0.00")
    page.goto("/statements/payments")
    page.get_by_role("link", name=second_transfer).click()
    expect(page.get_by_text("Kept as credit", exact=True)).to_be_visible()
    screenshot(page, "money-receipt-credit")

    # ...and applies the credit to what is left of INV-3002.
    page.get_by_role("link", name="use it to pay invoices").click()
    expect(page.get_by_role("heading", name="Credit available: $50.00")).to_be_visible()
    expect(page.get_by_label("Credit to apply to INV-3002")).to_have_value("50.00")
    screenshot(page, "money-credit")
    page.get_by_role("button", name="Apply credit").click()
    expect(page.get_by_text("$50.00 of credit applied.")).to_be_visible()
    settled(page)
    page.goto("/")
    expect(page.locator(".tile").filter(has_text="Open balance")).to_contain_text("$0.00")
    expect(page.locator(".tile").filter(has_text="Credit available")).to_have_count(0)
    assert Invoice.get(Invoice.number == "INV-3002").balance_cents == 0
