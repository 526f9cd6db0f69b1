"""Paying through Stripe in Chromium (issue 14): a guest pays a quick-pay invoice and a
signed-in customer pays two invoices, each on the hosted page the suite's own Stripe serves
(tests/stripe_fake), and comes back to the receipt and the new balances. Stripe's webhooks
reach the live server over loopback, signed as Stripe signs them."""

from playwright.sync_api import expect

from portal.models import Invoice, Payment

from .. import factories, stripe_fixtures
from .conftest import screenshot

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
live_server = stripe_fixtures.stripe_live_server


def test_guest_and_signed_in_payments_through_stripe(page, stripe_env):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    guest_invoice, code = factories.invoice(customer, number="INV-5001", total_cents=18_990)
    factories.invoice(customer, number="INV-5002", total_cents=42_000)
    factories.invoice(customer, number="INV-5003", total_cents=7_500)

    # A guest pays INV-5001 with quick pay.
    page.goto("/pay/")
    page.get_by_label("Invoice number").fill("INV-5001")
    page.get_by_label("Quick-pay code").fill(code)
    page.get_by_role("button", name="Find my invoice").click()
    page.get_by_label("Your name").fill("Sam Guest")
    page.get_by_label("Email for the receipt").fill("sam@example.com")
    page.get_by_label("Card or bank account (Stripe)").check()
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("button", name="Pay with card")).to_be_visible()  # Stripe's page
    screenshot(page, "stripe-hosted-page")
    page.get_by_role("button", name="Pay with card").click()
    expect(page.get_by_role("heading", name="Receipt R-000001")).to_be_visible()
    expect(page.locator(".receipt")).to_contain_text("$189.90")
    screenshot(page, "stripe-guest-receipt")
    assert Invoice.get_by_id(guest_invoice.id).balance_cents == 0

    # A signed-in customer pays the other two together.
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    page.get_by_label("Select INV-5002").check()
    page.get_by_label("Select INV-5003").check()
    expect(page.locator("#pay-total")).to_contain_text("$495.00")
    page.get_by_role("button", name="Review and pay selected").click()
    page.get_by_label("Card or bank account (Stripe)").check()
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Pay with card").click()
    expect(page.get_by_role("heading", name="Receipt R-000002")).to_be_visible()
    screenshot(page, "stripe-receipt")
    page.goto("/invoices/?status=all")
    for number in ("INV-5001", "INV-5002", "INV-5003"):
        expect(page.get_by_role("row").filter(has_text=number)).to_contain_text("Paid")
    page.goto("/")
    expect(page.locator(".tile").filter(has_text="Open balance")).to_contain_text("$0.00")
    stripe_env.wait_idle()  # the webhooks, after the returns: nothing applied twice
    assert Payment.select().count() == 2
    assert {p.status for p in Payment.select()} == {"applied"}
