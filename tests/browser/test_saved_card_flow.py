"""Saving a card and paying with it, in Chromium (issue 14): My account → consent → Stripe's
page in setup mode (the suite's own Stripe) → back to My account with the card listed →
pay an invoice with it in one step → the receipt; then remove the card."""

from playwright.sync_api import expect

from portal.models import Invoice, Payment

from .. import factories, stripe_fixtures
from .conftest import screenshot

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
live_server = stripe_fixtures.stripe_live_server


def test_save_a_card_pay_with_it_and_remove_it(page, stripe_env):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    invoice, _ = factories.invoice(customer, number="INV-6001", total_cents=25_000)

    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My account").click()
    expect(page.get_by_role("heading", name="Saved cards")).to_be_visible()

    page.get_by_role("button", name="Save a card").click()  # without consent: refused
    expect(page.get_by_text("Tick the box to allow us to save the card.")).to_be_visible()
    page.get_by_label("I allow Northwind Services to save this card", exact=False).check()
    page.get_by_role("button", name="Save a card").click()
    page.get_by_role("button", name="Save card").click()  # on Stripe's page
    expect(page.get_by_text("Visa •••• 4242 is saved.")).to_be_visible()
    screenshot(page, "stripe-saved-card")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    page.get_by_label("Select INV-6001").check()
    page.get_by_role("button", name="Review and pay selected").click()
    page.get_by_label("Visa •••• 4242 (saved card)").check()
    screenshot(page, "stripe-pay-with-saved-card")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("heading", name="Receipt R-000001")).to_be_visible()
    assert Invoice.get_by_id(invoice.id).balance_cents == 0

    page.goto("/account/")
    page.get_by_role("button", name="Remove Visa •••• 4242").click()
    expect(page.get_by_text("Visa •••• 4242 is removed.")).to_be_visible()
    expect(page.get_by_text("No saved cards.")).to_be_visible()
    stripe_env.wait_idle()
    assert Payment.select().count() == 1
