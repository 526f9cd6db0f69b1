"""Issue 19: the search box in the menu finds the account's invoices, quotes, orders and
cases from any page, at a desk and on a phone."""

from playwright.sync_api import expect

from portal.models import Case

from .. import factories
from .conftest import screenshot


def test_search_from_the_menu_finds_each_kind(page):
    acme = factories.customer(name="Acme Manufacturing")
    factories.portal_user(acme, email="pat@acme.example", first_name="Pat")
    factories.invoice(acme, number="INV-8001", description="Pump overhaul parts")
    factories.quote(acme, number="Q-8001", lines=[(None, "Pump housing", 1000, 5000)])
    factories.order(acme, number="SO-8001", customer_po="PO-PUMP")
    Case.create(number="CASE-008001", customer=acme, subject="Pump leaks")
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()

    nav = page.get_by_role("navigation", name="Main")
    box = nav.get_by_label("Search invoices, quotes, orders and cases")
    box.fill("pump")
    box.press("Enter")
    expect(page.get_by_role("heading", name="Search", exact=True)).to_be_visible()
    for heading, link in (
        ("Invoices", "Invoice INV-8001"),
        ("Quotes", "Quote Q-8001"),
        ("Orders", "Order SO-8001"),
        ("Support cases", "CASE-008001"),
    ):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        expect(page.get_by_role("link", name=link)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    screenshot(page, "search-desk")

    page.set_viewport_size({"width": 390, "height": 844})
    nav.get_by_role("button", name="Menu").click()
    expect(box).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "search-phone", full_page=False)
    page.get_by_role("link", name="Invoice INV-8001").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("INV-8001")
