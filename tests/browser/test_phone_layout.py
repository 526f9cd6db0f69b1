"""Issue 19: at 390 px the customer invoice list is stacked rows (number, status, due date,
balance and the pick box on screen), and the pages stay inside the screen."""

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot


def _sign_in(page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    for n in range(3):
        factories.invoice(customer, number=f"INV-80{n:02d}", total_cents=123_456_78)
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()


def test_the_invoice_list_stacks_on_a_phone(page):
    _sign_in(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/invoices/")
    row = page.locator(".invoice-table tbody tr").first
    for part in (
        row.locator(".pick"),
        row.get_by_role("link", name="INV-8000"),
        row.locator("td[data-label=Due]"),
        row.locator("td[data-label=Status]"),
        row.locator("td[data-label=Balance]"),
    ):
        expect(part).to_be_visible()
        box = part.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    pick = row.locator(".pick").bounding_box()
    assert pick["width"] >= 24 and pick["height"] >= 24
    screenshot(page, "phone-invoices", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(page.locator(".invoice-table thead")).to_be_visible()
    screenshot(page, "desk-invoices", full_page=False)
