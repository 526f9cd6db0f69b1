"""Issue 19: at 390 px the customer invoice list is stacked rows (number, status, due date,
balance and the pick box on screen), and the pages stay inside the screen."""

from playwright.sync_api import expect

from portal.models import Customer

from .. import factories
from .conftest import screenshot
from .test_phone_menu import _sign_in


def test_the_invoice_list_stacks_on_a_phone(page):
    _sign_in(page)  # Acme Manufacturing with INV-8001
    customer = Customer.get(Customer.name == "Acme Manufacturing")
    for number in ("INV-8000", "INV-8002"):
        factories.invoice(customer, number=number, total_cents=123_456_78)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/invoices/")
    row = page.locator(".invoice-table tbody tr").first
    for part in (
        row.locator(".pick"),
        row.locator(".inv-link"),
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


def test_no_customer_page_scrolls_sideways_on_a_phone(page):
    """Dashboard, invoices, an invoice, the statement, aging and payment history at 390 px:
    the page is no wider than the screen and the statement's header stays in its card."""
    _sign_in(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/invoices/")
    page.locator(".inv-link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("INV-8001")
    invoice_url = page.url
    for path in (
        "/",
        "/invoices/",
        invoice_url,
        "/statements/",
        "/statements/aging",
        "/statements/payments",
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    page.goto("/statements/")
    screenshot(page, "phone-statement", full_page=False)
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('.doc *')].filter(e => {
             if (e.closest('.table-wrap')) return false;  // a table scrolls in its box
             const card = e.closest('.doc').getBoundingClientRect();
             const box = e.getBoundingClientRect();
             return box.width && (box.right > card.right + 1 || box.left < card.left - 1);
           }).map(e => e.tagName + '.' + e.className)"""
    )
    assert overflowing == []


def test_the_payment_method_radios_are_24_px_and_the_card_option_is_described(page):
    _sign_in(page)
    page.goto("/invoices/")
    page.locator(".pick").first.check()
    page.get_by_role("button", name="Review and pay selected").click()
    methods = page.get_by_role("group", name="Payment method")
    expect(methods).to_be_visible()
    radios = methods.get_by_role("radio")
    assert radios.count() >= 2
    for i in range(radios.count()):
        box = radios.nth(i).bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, box
    expect(methods).to_contain_text("secure page")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "phone-review-methods", full_page=True)


def test_the_dashboard_tiles_fill_their_row_at_a_desk(page):
    _sign_in(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/")
    row = page.locator(".tiles").bounding_box()
    last = page.locator(".tiles > .tile").last.bounding_box()
    assert abs((last["x"] + last["width"]) - (row["x"] + row["width"])) <= 2, (row, last)
    screenshot(page, "desk-dashboard", full_page=False)
