"""A customer signs in, sees the home page, and signs out — in Chromium."""

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot


def test_customer_signs_in_sees_home_and_signs_out(app, page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.invoice(customer, total_cents=125_000)
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")

    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    expect(page.locator(".tile-value").first).to_have_text("$1,250.00")
    expect(page.get_by_text("Acme Manufacturing").first).to_be_visible()
    screenshot(page, "customer-home")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/")
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible()


def test_wrong_password_keeps_the_email_and_says_so(app, page):
    factories.portal_user(email="lee@example.com")
    page.goto("/login")
    page.get_by_label("Email").fill("lee@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    expect(page.get_by_label("Email")).to_have_value("lee@example.com")


def test_show_password_toggle_is_a_real_button(app, page):
    page.goto("/login")
    password = page.get_by_label("Password")
    password.fill("secret words")
    toggle = page.get_by_role("button", name="Show")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(password).to_have_attribute("type", "text")
    expect(page.get_by_role("button", name="Hide")).to_have_attribute("aria-pressed", "true")
