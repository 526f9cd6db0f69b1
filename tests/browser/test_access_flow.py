"""Portal access in Chromium: register with an invoice and the emailed link, sign in with
required terms, and reset a forgotten password — with screenshots of each page."""

import re

from playwright.sync_api import expect

from portal.services import settings

from .. import factories
from .conftest import screenshot, settled

PASSWORD = "granite river lantern"
expect.set_options(timeout=10_000)


def emailed_link(mailbox, to, count=1) -> str:
    message = [m for m in mailbox.wait_for(count) if m["To"] == to][-1]
    return re.search(r"http://\S+", message.get_body(("plain",)).get_content()).group(0)


def test_register_with_an_invoice_and_see_only_that_company(app, page, mailbox):
    acme = factories.customer(name="Acme Manufacturing", allow_self_registration=True)
    invoice, code = factories.invoice(acme, number="INV-5001", total_cents=248_000)
    other = factories.customer(name="Globex")
    factories.invoice(other, number="INV-9009")
    settings.save({"login_message": "**Welcome!** Our office is closed on Friday 27 November."})

    page.goto("/login")
    screenshot(page, "access-sign-in")
    page.get_by_role("link", name="Register with an invoice").click()
    expect(page.get_by_role("heading", name="Register with an invoice")).to_be_visible()
    page.get_by_label("Invoice number").fill("INV-5001")
    page.get_by_label("Quick-pay code").fill(code)
    page.get_by_label("Your name").fill("Robin Clerk")
    page.get_by_label("Your work email").fill("robin@acme.example")
    screenshot(page, "access-register")
    page.get_by_role("button", name="Email me a sign-up link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    screenshot(page, "access-register-sent")

    page.goto(emailed_link(mailbox, "robin@acme.example"))
    expect(page).to_have_url(re.compile(r"/register/confirm$"))  # the token left the URL
    expect(page.get_by_role("heading", name="Finish your registration")).to_be_visible()
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD)
    screenshot(page, "access-set-password")
    page.get_by_role("button", name="Set password and sign in").click()

    expect(page.get_by_text("Welcome, Robin! Your login is ready.")).to_be_visible()
    expect(page.get_by_text("Acme Manufacturing").first).to_be_visible()
    screenshot(page, "access-registered-home")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    expect(page).to_have_url(re.compile(r"/invoices/"))
    expect(page.get_by_text("INV-5001").first).to_be_visible()
    expect(page.get_by_text("INV-9009")).to_have_count(0)
    expect(page.get_by_text("Globex")).to_have_count(0)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My account").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    expect(
        page.get_by_text("can see and pay invoices for all of Acme Manufacturing")
    ).to_be_visible()
    screenshot(page, "access-my-account")


def test_sign_in_with_required_terms_then_manage_company_logins(app, page):
    acme = factories.customer(name="Acme Manufacturing")
    plant = factories.site(acme, name="Plant 1")
    factories.site(acme, name="Plant 2")
    factories.portal_user(acme, email="terry@example.com", first_name="Terry", last_name="Admin")
    factories.portal_user(
        acme, roles="invoices,statements", sites=[plant], first_name="Bo", last_name="Buyer"
    )
    factories.portal_user(acme, status="pending", password=None, first_name="Pen", last_name="Ding")
    settings.update(
        {
            "login_terms": "By using this portal you agree to our **terms of trade**. "
            "Invoices are payable within 30 days.",
            "require_terms_acceptance": True,
        }
    )
    page.goto("/login")
    page.get_by_label("Email").fill("terry@example.com")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Tick the box to accept the terms")).to_be_visible()
    screenshot(page, "access-terms-required")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "access-terms-required-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    settled(page)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_label("I have read and accept the terms of use").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Terry")).to_be_visible()

    # Terry is the company administrator: approve a registration, open the invite form.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Company").click()
    expect(page.get_by_role("heading", name="Waiting for your approval")).to_be_visible()
    screenshot(page, "access-company")
    page.get_by_role("button", name="Approve Pen Ding").click()
    expect(page.get_by_text("Pen Ding is approved")).to_be_visible()
    page.get_by_role("link", name="Invite a colleague").click()
    expect(page.get_by_role("heading", name="Invite a colleague")).to_be_visible()
    screenshot(page, "access-invite")


def test_reset_a_forgotten_password(app, page, mailbox):
    factories.portal_user(email="fran@example.com", first_name="Fran")
    page.goto("/login")
    page.get_by_role("link", name="Forgot password?").click()
    # A boosted link swaps the page: wait for it before typing, or the old form gets the text.
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("Email").fill("fran@example.com")
    screenshot(page, "access-forgot")
    page.get_by_role("button", name="Email me a reset link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    page.goto(emailed_link(mailbox, "fran@example.com"))
    expect(page).to_have_url(re.compile(r"/reset$"))
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed")).to_be_visible()
    screenshot(page, "access-reset-done")
    settled(page)
    page.get_by_label("Email").fill("fran@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Fran")).to_be_visible()
