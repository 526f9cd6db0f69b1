"""A staff agent chooses its own office alerts in Chromium (issue 18): My alerts from the
overview, one choice per kind, saved; the overview's counts link to their lists."""

from playwright.sync_api import expect

from portal.services import alerts

from .. import factories
from .conftest import screenshot


def test_agent_chooses_its_alerts_from_the_overview(app, page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.rfq(customer)
    agent = factories.staff(email="sam@example.com")

    page.goto("/staff/login")
    page.get_by_label("Email").fill("sam@example.com")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(
        page.get_by_role("link", name="1 requests for quote waiting to be quoted")
    ).to_be_visible()
    screenshot(page, "staff-overview-1280")
    page.get_by_role("link", name="My alerts").click()
    expect(page.get_by_role("heading", name="My alerts")).to_be_visible()

    replies = page.get_by_role("group", name="Customer replies")
    expect(replies.get_by_label("Email at once")).to_be_checked()  # an agent's default
    replies.get_by_label("Not at all").check()
    page.get_by_role("group", name="Payments to confirm").get_by_label("Email at once").check()
    page.get_by_role("button", name="Save my alerts").click()
    expect(page.get_by_text("Your alert choices are saved.")).to_be_visible()
    expect(
        page.get_by_role("group", name="Customer replies").get_by_label("Not at all")
    ).to_be_checked()
    chosen = alerts.choices(agent)
    assert chosen["case_reply"] == "none" and chosen["payment_to_confirm"] == "now"
    screenshot(page, "staff-alerts-1280")

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "staff-alerts-390")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow
    page.goto("/staff/")
    screenshot(page, "staff-overview-390")
