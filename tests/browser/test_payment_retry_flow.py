"""Issue 19: after a declined card, "Try again" brings back what the payer typed: their name,
email and the amounts, so nothing is typed twice."""

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot


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
    page.get_by_label("Your name").fill("Robin Accounts")
    page.get_by_label("Email for the receipt").fill("ap@acme.example")
    page.get_by_label("Card (test mode)").check()
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Simulate a declined card").click()

    expect(page.get_by_role("heading", name="The payment was declined")).to_be_visible()
    page.get_by_role("link", name="Try again").click()

    expect(page.get_by_role("heading", name="Review your payment")).to_be_visible()
    expect(page.get_by_role("heading", name="Pay $200.00")).to_be_visible()
    expect(page.get_by_label("Your name")).to_have_value("Robin Accounts")
    expect(page.get_by_label("Email for the receipt")).to_have_value("ap@acme.example")
    expect(page.get_by_label("Card (test mode)")).to_be_checked()
    screenshot(page, "payment-try-again")
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Pay $200.00").click()
    expect(page.get_by_role("heading", name="Receipt R-")).to_be_visible()
