"""Customer two-step sign-in in Chromium (issue 16): a passkey made by Chromium's virtual
authenticator (the DevTools protocol's WebAuthn domain) signs in without a password and as
the second step; an authenticator app's code is the second step after the password; a
company's rule sends a login to set one up. Every page is also shot at phone width.

The portal is served as http://localhost:<port>: WebAuthn needs a domain for its relying
party (an IP address is refused), and localhost is a secure context without TLS.
"""

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect

from portal.models_two_step import Passkey

from .. import factories
from .conftest import ARTIFACTS, LiveServer, screenshot, settled

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    server.url = f"http://localhost:{server.server.server_port}"
    app.config["BASE_URL"] = server.url
    server.start()
    yield server
    server.stop()


def shots(page, name: str) -> None:
    """The page at desktop and at phone width."""
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def virtual_authenticator(page) -> tuple:
    """A platform authenticator (like a phone's or a laptop's) that keeps passkeys and
    verifies its user, attached to this page through the DevTools protocol."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, made["authenticatorId"]


def sign_in_with_password(page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()


def test_a_passkey_is_added_and_signs_in_without_a_password(app, page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    cdp, authenticator = virtual_authenticator(page)

    sign_in_with_password(page, "pat@acme.example")
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My account").click()
    expect(page.get_by_role("heading", name="Sign-in security")).to_be_visible()
    shots(page, "two-step-account-off")
    page.get_by_label("Name it").fill("Work laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Your passkey is added.", exact=False)).to_be_visible()
    expect(page.get_by_text("Work laptop", exact=True)).to_be_visible()
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert (
        len(credentials["credentials"]) == 1
        and credentials["credentials"][0]["isResidentCredential"]
    )
    assert Passkey.select().count() == 1
    page.locator("#sign-in-security").scroll_into_view_if_needed()
    shots(page, "two-step-account-passkey")
    page.set_viewport_size(PHONE)
    page.locator("#sign-in-security").screenshot(path=str(ARTIFACTS / "two-step-card-phone.png"))
    page.set_viewport_size(DESKTOP)

    sign_out(page)
    page.goto("/login")
    shots(page, "two-step-sign-in-with-passkey")
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()

    sign_out(page)  # the password now leads to the passkey as the second step
    sign_in_with_password(page, "pat@acme.example")
    expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    shots(page, "two-step-passkey-second-step")
    page.get_by_role("button", name="Use your passkey").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    assert Passkey.get().sign_count >= 2


def test_an_authenticator_app_is_the_second_step(app, page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="lee@acme.example", first_name="Lee")

    sign_in_with_password(page, "lee@acme.example")
    expect(page.get_by_role("heading", name="Welcome, Lee")).to_be_visible()
    page.goto("/account/")
    page.get_by_role("link", name="Set up an authenticator app").click()
    expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    shots(page, "two-step-app-setup")
    key = page.locator(".secret-key").inner_text().replace(" ", "")
    totp = pyotp.TOTP(key)
    settled(page)
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("Your authenticator app is on.", exact=False)).to_be_visible()

    page.locator("#password-codes").fill(factories.PASSWORD)
    page.get_by_role("button", name="Create recovery codes").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator(".recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in codes)
    shots(page, "two-step-recovery-codes")
    page.get_by_role("link", name="I have saved them").click()

    sign_out(page)
    sign_in_with_password(page, "lee@acme.example")
    expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    shots(page, "two-step-code")
    settled(page)
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Sign in with the code").click()
    expect(page.get_by_text("That code did not match.", exact=False)).to_be_visible()
    settled(page)
    page.get_by_label("Code from your authenticator app").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Sign in with the code").click()
    expect(page.get_by_role("heading", name="Welcome, Lee")).to_be_visible()


def test_a_company_rule_sends_a_login_to_set_up_two_step(app, page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(
        customer, email="ada@acme.example", first_name="Ada", roles="company_admin"
    )
    factories.portal_user(customer, email="kim@acme.example", first_name="Kim", roles="invoices")
    virtual_authenticator(page)

    sign_in_with_password(page, "ada@acme.example")
    expect(page.get_by_role("heading", name="Welcome, Ada")).to_be_visible()
    page.goto("/account/")
    page.get_by_label("Require two-step sign-in for every login of my company").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(
        page.get_by_text("Every login of your company now signs in with two steps", exact=False)
    ).to_be_visible()
    sign_out(page)

    sign_in_with_password(page, "kim@acme.example")
    expect(page.get_by_role("heading", name="Set up two-step sign in")).to_be_visible()
    shots(page, "two-step-required-setup")
    page.get_by_role("button", name="Create a passkey").click()
    expect(page.get_by_text("Two-step sign-in is on.", exact=False).first).to_be_visible()
    expect(page.get_by_role("heading", name="Sign-in security")).to_be_visible()


def test_staff_reset_page(app, page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    factories.staff(email="boss@office.example", admin=True)
    cdp, _ = virtual_authenticator(page)
    sign_in_with_password(page, "pat@acme.example")
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    page.goto("/account/")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Your passkey is added.", exact=False)).to_be_visible()
    sign_out(page)

    page.goto("/staff/login")
    page.get_by_label("Email").fill("boss@office.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/staff/")
    page.goto("/staff/users/")
    page.get_by_role("link", name="Customer two-step reset").click()
    page.get_by_label("Customer login's email").fill("pat@acme.example")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("button", name="Reset two-step sign-in")).to_be_visible()
    shots(page, "two-step-staff-reset")
    page.get_by_role("button", name="Reset two-step sign-in").click()
    expect(page.get_by_text("they were emailed", exact=False)).to_be_visible()
    assert Passkey.select().count() == 0
