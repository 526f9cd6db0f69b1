"""Issue 19: after a declined card, "Try again" brings back what the payer typed: their name,
email and the amounts, so nothing is typed twice."""

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot, settled


def _declined_then_try_again(page, name: str, email: str) -> None:
    """Type the payer's details, pay by test card, have it declined and press "Try again"."""
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email for the receipt").fill(email)
    page.get_by_label("Card (test mode)").check()
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Simulate a declined card").click()
    expect(page.get_by_role("heading", name="The payment was declined")).to_be_visible()
    page.get_by_role("link", name="Try again").click()


def test_declined_card_then_try_again_keeps_name_email_and_amount(page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    factories.invoice(customer, number="INV-7001", total_cents=57_300)
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()

    page.goto("/invoices/")
    page.get_by_label("Select INV-7001").check()
    page.get_by_label("Amount to pay on INV-7001").fill("200.00")
    expect(page.locator("#pay-total")).to_contain_text("$200.00")
    page.get_by_role("button", name="Review and pay selected").click()
    expect(page.get_by_role("heading", name="Review your payment")).to_be_visible()
    _declined_then_try_again(page, "Robin Accounts", "ap@acme.example")

    expect(page.get_by_role("heading", name="Review your payment")).to_be_visible()
    expect(page.get_by_role("heading", name="Pay $200.00")).to_be_visible()
    expect(page.get_by_label("Your name")).to_have_value("Robin Accounts")
    expect(page.get_by_label("Email for the receipt")).to_have_value("ap@acme.example")
    expect(page.get_by_label("Card (test mode)")).to_be_checked()
    screenshot(page, "payment-try-again")
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Pay $200.00").click()
    expect(page.get_by_role("heading", name="Receipt R-")).to_be_visible()


def test_quick_pay_declined_then_try_again_keeps_name_email_and_amount(page):
    invoice, code = factories.invoice(number="INV-7002", total_cents=125_000)
    page.goto("/pay/")
    page.get_by_label("Invoice number").fill(invoice.number)
    page.get_by_label("Quick-pay code").fill(code)
    page.get_by_role("button", name="Find my invoice").click()
    expect(page.get_by_role("heading", name="Invoice INV-7002")).to_be_visible()
    settled(page)
    page.get_by_label("Amount to pay").fill("300.00")
    _declined_then_try_again(page, "Guest Payer", "guest@example.com")
    expect(page.get_by_role("heading", name="Invoice INV-7002")).to_be_visible()
    expect(page.get_by_label("Amount to pay")).to_have_value("300.00")
    expect(page.get_by_label("Your name")).to_have_value("Guest Payer")
    expect(page.get_by_label("Email for the receipt")).to_have_value("guest@example.com")
    screenshot(page, "quick-pay-try-again")
