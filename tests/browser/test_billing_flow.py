"""A customer finds invoices, pays two of them (one partly), sees the receipt, downloads the
CSV and opens the statement — in Chromium, with screenshots of the billing pages."""

import csv
import io
import re
from datetime import date, timedelta

from playwright.sync_api import expect

from portal.models import Invoice, InvoiceLine

from .. import factories
from .conftest import screenshot, settled


def _books():
    """A small business's account: paid history, open and overdue invoices, one discount."""
    customer = factories.customer(
        name="Acme Manufacturing", account_number="ACME-001", address="12 Foundry Lane\nSpringfield"
    )
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    today = date.today()
    specs = [
        ("INV-2041", 120, 84_500, 84_500),
        ("INV-2042", 95, 126_000, 0),
        ("INV-2043", 70, 42_000, 12_000),
        ("INV-2044", 50, 310_250, 0),
        ("INV-2045", 33, 18_990, 0),
        ("INV-2046", 12, 57_300, 0),
        ("INV-2047", 4, 99_000, 0),
        ("INV-2048", 1, 23_400, 0),
    ]
    for number, age, total, paid in specs:
        invoice, _ = factories.invoice(
            customer,
            number=number,
            total_cents=total,
            paid_cents=paid,
            issue_date=today - timedelta(days=age),
            description="Maintenance contract and parts",
            discount_bp=200 if number == "INV-2048" else 0,
            discount_days=10 if number == "INV-2048" else 0,
        )
        labour = (total // 5) * 5 // 2
        InvoiceLine.create(
            invoice=invoice,
            position=1,
            item_code="SVC-01",
            description="Scheduled maintenance visit (hours)",
            quantity_milli=2500,
            unit_price_cents=total // 5,
            amount_cents=labour,
        )
        InvoiceLine.create(
            invoice=invoice,
            position=2,
            item_code="PRT-17",
            description="Replacement parts",
            quantity_milli=1000,
            unit_price_cents=total - labour,
            amount_cents=total - labour,
        )
    return customer


def test_filter_search_pay_two_see_receipt_csv_and_statement(app, page):
    _books()
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    chart = page.get_by_role("img", name="Open balance by days past due")
    expect(chart).to_be_visible()
    screenshot(page, "billing-dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/invoices/$"))
    # Filter: the overdue tab (htmx swap, URL pushed).
    page.get_by_role("link", name="Overdue").click()
    expect(page).to_have_url(re.compile(r"/invoices/\?status=overdue$"))
    expect(page.get_by_role("link", name="INV-2044")).to_be_visible()
    expect(page.get_by_role("link", name="INV-2047")).to_have_count(0)
    # Search by number.
    settled(page)
    page.get_by_label("Search by number, description or PO").fill("2045")
    expect(page.get_by_role("link", name="INV-2044")).to_have_count(0)
    expect(page.get_by_role("link", name="INV-2045")).to_be_visible()
    expect(page).to_have_url(re.compile(r"status=overdue&q=2045"))

    page.get_by_role("link", name="Open").first.click()
    expect(page).to_have_url(re.compile(r"status=open&q=2045"))
    settled(page)
    page.get_by_label("Search by number, description or PO").fill("")
    expect(page).to_have_url(re.compile(r"/invoices/\?status=open$"))
    expect(page.get_by_role("link", name="INV-2042")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 1240})  # the pay bar is sticky
    screenshot(page, "billing-invoices", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})

    # Tick two invoices; pay one in full and part of the other.
    page.get_by_label("Select INV-2045").check()
    page.get_by_label("Select INV-2046").check()
    amount = page.get_by_label("Amount to pay on INV-2046")
    amount.fill("200.00")
    total = page.locator("#pay-total")
    expect(total).to_contain_text("2 invoices selected")
    expect(total).to_contain_text("$389.90")
    screenshot(page, "billing-invoices-selected", full_page=False)
    page.get_by_role("button", name="Review and pay selected").click()

    expect(page.get_by_role("heading", name="Review your payment")).to_be_visible()
    expect(page.get_by_role("heading", name="Pay $389.90")).to_be_visible()
    page.get_by_label("Card (test mode)").check()
    screenshot(page, "billing-review")
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_role("button", name="Pay $389.90").click()

    expect(page.get_by_role("heading", name="Receipt R-")).to_be_visible()
    receipt = page.locator(".receipt")
    expect(receipt).to_contain_text("INV-2045")
    expect(receipt).to_contain_text("$373.00")  # INV-2046: 573.00 - 200.00 left
    screenshot(page, "billing-receipt")

    # The list shows the new balances; INV-2045 is paid and gone from the open tab.
    page.goto("/invoices/?status=all")
    row = page.get_by_role("row").filter(has_text="INV-2046")
    expect(row).to_contain_text("$373.00")
    expect(page.get_by_role("row").filter(has_text="INV-2045")).to_contain_text("Paid")
    assert Invoice.get(Invoice.number == "INV-2045").balance_cents == 0

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert {r["number"]: r["balance"] for r in rows}["INV-2046"] == "373.00"
    assert len(rows) == 8

    page.get_by_role("link", name="INV-2046").click()
    expect(page).to_have_url(re.compile(r"/invoices/[a-z2-7]{26}$"))  # opaque id (E3)
    expect(page.get_by_role("heading", name="INV-2046")).to_be_visible()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_have_count(
        0
    )  # a page, not a swap
    expect(page.get_by_text("Payments applied")).to_be_visible()
    screenshot(page, "billing-invoice")
    page.get_by_role("link", name="Printable invoice").click()
    expect(
        page.get_by_role("img", name="QR code: a link to pay this invoice online")
    ).to_be_visible()
    screenshot(page, "billing-invoice-print")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Statements").click()
    expect(page.get_by_role("heading", name="Statement of account")).to_be_visible()
    expect(page.locator(".stmt-sum .closing")).to_contain_text("$6,259.50")
    screenshot(page, "billing-statement")
    page.get_by_role("link", name="Aging").click()
    expect(page.get_by_role("heading", name="Open balance by days past due")).to_be_visible()
    screenshot(page, "billing-aging")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto("/invoices/")
    expect(page.get_by_role("button", name="Review and pay selected")).to_be_visible()
    screenshot(page, "billing-invoices-phone")
    page.goto("/")
    screenshot(page, "billing-dashboard-phone")

    # G3: htmx runs with the hardened configuration, and after browsing invoices nothing
    # of them is kept in web storage (no history cache).
    config = page.evaluate(
        "() => ({eval: htmx.config.allowEval, scripts: htmx.config.allowScriptTags,"
        " history: htmx.config.historyCacheSize, styles: htmx.config.includeIndicatorStyles,"
        " self: htmx.config.selfRequestsOnly, settle: htmx.config.attributesToSettle})"
    )
    # attributesToSettle without "style": settling must not write style attributes (H1 CSP).
    assert config == {
        "eval": False,
        "scripts": False,
        "history": 0,
        "styles": False,
        "self": True,
        "settle": ["class", "width", "height"],
    }
    stored = page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert "INV-2046" not in stored and "<" not in stored
