"""A guest pays invoices without signing in, through the test checkout — in Chromium."""

import re
from datetime import date, timedelta

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot, settled


def find_invoice(page, number, code):
    page.get_by_label("Invoice number").fill(number)
    page.get_by_label("Quick-pay code").fill(code)
    page.get_by_role("button", name="Find my invoice").click()
    expect(page.get_by_role("heading", name=f"Invoice {number}")).to_be_visible()


def pay_with_test_checkout(page, amount=None):
    settled(page)  # the lookup's answer was just swapped in
    if amount is not None:
        page.get_by_label("Amount to pay").fill(amount)
    page.get_by_label("Your name").fill("Pat Payer")
    page.get_by_label("Email for the receipt").fill("pat@acme.example")
    page.get_by_label("Card (test mode)").check()


def test_guest_pays_part_then_pays_another_in_full_with_discount(app, page, mailbox):
    customer = factories.customer(name="Acme Manufacturing", email="ap@acme.example")
    first, first_code = factories.invoice(customer, total_cents=125_000)
    second, second_code = factories.invoice(
        customer,
        total_cents=50_000,
        issue_date=date.today() - timedelta(days=3),
        discount_bp=200,
        discount_days=10,
    )

    # From the sign-in page, the way a customer holding a paper invoice starts.
    page.goto("/login")
    page.get_by_role("link", name="Pay an invoice", exact=True).click()
    expect(page.get_by_role("heading", name="Pay an invoice")).to_be_visible()
    page.get_by_label("Invoice number").fill(first.number)
    page.get_by_label("Quick-pay code").fill(first_code.lower())
    screenshot(page, "quickpay-form")
    page.get_by_role("button", name="Find my invoice").click()

    expect(page.get_by_role("heading", name=f"Invoice {first.number}")).to_be_visible()
    expect(page.get_by_text("$1,250.00").first).to_be_visible()
    expect(page.get_by_label("Amount to pay")).to_have_value("1250.00")
    pay_with_test_checkout(page, "300.00")
    screenshot(page, "quickpay-pay-page")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "quickpay-pay-page-mobile")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.get_by_role("button", name="Continue to payment").click()

    # The simulated hosted checkout, loudly in test mode.
    expect(page.get_by_text("TEST MODE")).to_be_visible()
    expect(page.get_by_role("heading", name="Pay $300.00")).to_be_visible()
    screenshot(page, "test-checkout")
    page.get_by_role("button", name="Pay $300.00").click()

    expect(page.get_by_role("heading", name=re.compile(r"Receipt R-\d+"))).to_be_visible()
    receipt = page.get_by_role("heading", name=re.compile(r"Receipt R-\d+")).inner_text()
    number = receipt.removeprefix("Receipt ").strip()
    row = page.get_by_role("row", name=re.compile(first.number))
    expect(row).to_contain_text("$300.00")
    expect(row).to_contain_text("$950.00")  # the new balance
    screenshot(page, "quickpay-receipt")

    message = mailbox.wait_for(1)[0]
    assert message["To"] == "pat@acme.example"
    assert number in message["Subject"]
    assert "balance now $950.00" in message.get_content()

    # A second invoice, paid in full inside its early-payment window.
    page.goto("/pay/")
    find_invoice(page, second.number, second_code)
    expect(page.get_by_text("Pay $490.00 by")).to_be_visible()
    expect(page.get_by_label("Amount to pay")).to_have_value("490.00")
    pay_with_test_checkout(page)
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Pay $490.00").click()
    row = page.get_by_role("row", name=re.compile(second.number))
    expect(row).to_contain_text("$490.00")
    expect(row).to_contain_text("$10.00")  # the discount taken
    expect(row).to_contain_text("$0.00")
    expect(page.get_by_text("$10.00 saved")).to_be_visible()
    screenshot(page, "quickpay-receipt-discount")
    second_mail = mailbox.wait_for(2)[1]
    assert "early-payment discount $10.00" in second_mail.get_content()
