"""A staff admin changes what customers see, in Chromium: bulletin and login message with a
live preview, required login terms, and a test email that reaches the SMTP server."""

import re

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot, settled


def test_admin_edits_messages_and_terms_then_customer_must_accept(app, page, mailbox):
    customer = factories.customer(name="Acme Manufacturing", account_number="ACME-001")
    factories.site(customer, site_code="NORTH", name="North depot")
    factories.invoice(customer, total_cents=125_000)
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    for name in ("Globex Corporation", "Initech", "Umbrella Supplies", "Stark Industrial"):
        other = factories.customer(name=name)
        factories.invoice(other, total_cents=48_250)
    factories.staff(email="boss@example.com", admin=True)

    # Staff admin signs in and opens the settings.
    page.goto("/staff/login")
    page.get_by_label("Email").fill("boss@example.com")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Portal settings")).to_be_visible()
    settled(page)

    # Markdown with a live, sanitized preview beside each field.
    page.get_by_label("Bulletin message").fill("**Closed** on Friday for stocktaking.")
    expect(page.locator("#bulletin_message-preview strong")).to_have_text("Closed")
    page.get_by_label("Login message").fill("Welcome to the *new* Northwind portal.")
    expect(page.locator("#login_message-preview em")).to_have_text("new")
    page.get_by_label("Login terms").fill("Use this portal for **Acme** business only.")
    expect(page.locator("#login_terms-preview strong")).to_have_text("Acme")
    page.get_by_label("Customers must accept the terms to sign in").check()
    page.get_by_role("button", name="Save settings").last.click()
    expect(page.get_by_text("Settings saved")).to_be_visible()
    expect(page.get_by_label("Customers must accept the terms to sign in")).to_be_checked()
    # After the save: a screenshot touches the inputs (style=""), which htmx would then copy.
    screenshot(page, "staff-settings")

    # An email template: preview as typed, then "send me a test".
    page.get_by_role("link", name="Invitation").click()
    expect(page).to_have_url(re.compile(r"/emails/invitation"))
    settled(page)
    page.get_by_label("Subject").fill("Welcome aboard, {{ name }}")
    expect(page.locator("#email-preview .mail-subject")).to_have_text("Welcome aboard, Pat Buyer")
    page.get_by_role("button", name="Send me a test").click()
    expect(page.get_by_text("A test email is on its way to boss@example.com.")).to_be_visible()
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "boss@example.com"
    assert message["Subject"] == "[Test] Welcome aboard, Pat Buyer"

    # The customer list with active search.
    page.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("link", name="Acme Manufacturing")).to_be_visible()
    screenshot(page, "staff-customers")
    settled(page)
    page.get_by_label("Search customers").fill("globex")
    expect(page.get_by_role("link", name="Acme Manufacturing")).to_be_hidden()
    expect(page.get_by_role("link", name="Globex Corporation")).to_be_visible()
    assert "q=globex" in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Staff sign in")).to_be_visible()
    settled(page)

    # The customer sees the new login message and must accept the terms.
    page.goto("/login")
    expect(page.get_by_text("Welcome to the new Northwind portal.")).to_be_visible()
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Tick the box to accept the terms of use")).to_be_visible()
    settled(page)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_label("I have read and accept the terms of use").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    expect(page.locator(".bulletin strong")).to_have_text("Closed")
