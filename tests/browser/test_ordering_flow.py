"""B2B ordering in Chromium (issue 20): a site-scoped buyer finds products, orders at their
own prices for their own site, the office accepts and exports it, the ERP's order comes
back through the import linked to it, and the buyer reorders; a quote accepted as a
signature. Screenshots at 1280 and 390 px wide."""

import csv
import io

from playwright.sync_api import expect

from portal.models import CustomerPrice, SalesOrder, WebOrder
from portal.services import importer

from .. import factories
from .conftest import screenshot, settled


def _sign_in(page, path, email):
    page.goto(path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _narrow(page, name):
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, f"{name}-390")
    page.set_viewport_size({"width": 1280, "height": 860})


def test_find_order_accept_export_link_and_reorder(app, page, browser, live_server, mailbox):
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME")
    plant_a = factories.site(acme, name="Plant A", site_code="A")
    plant_b = factories.site(acme, name="Plant B", site_code="B")
    factories.portal_user(
        acme, email="pat@acme.example", first_name="Pat", roles="orders,quotes", sites=[plant_a]
    )
    factories.staff(email="sam@example.com")
    bolt = factories.product(
        item_code="BOLT-M10",
        description="Hex bolt M10 x 40",
        price_cents=95,
        available_quantity=5000,
        unit="ea",
    )
    factories.product(
        item_code="NUT-M10", description="Hex nut M10", price_cents=30, available_quantity=8000
    )
    factories.product(item_code="GLUE-1", description="Thread locker", price_cents=900)
    CustomerPrice.create(customer=acme, product=bolt, price_cents=82)

    _sign_in(page, "/login", "pat@acme.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Catalog").click()
    settled(page)
    search = page.get_by_label("Search products")
    search.fill("hex m10")
    expect(page.locator("#catalog-results tbody tr")).to_have_count(2)
    expect(page.locator("#catalog-results")).not_to_contain_text("GLUE-1")
    expect(page.locator("#catalog-results")).to_contain_text("$0.82")  # Acme's own price
    screenshot(page, "catalog-1280")
    _narrow(page, "catalog")

    page.get_by_role("link", name="BOLT-M10", exact=True).click()
    expect(page.get_by_text("5000 ea available").first).to_be_visible()
    settled(page)
    page.get_by_label("Quantity").fill("200")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("BOLT-M10 is in your cart.")).to_be_visible()
    page.goto("/catalog/?q=nut")
    page.get_by_role("link", name="NUT-M10", exact=True).click()
    settled(page)
    page.get_by_label("Quantity").fill("9000")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("Only 8000 ea available.")).to_be_visible()
    page.get_by_label("Quantity").fill("100")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("NUT-M10 is in your cart.")).to_be_visible()

    # The cart: totals recomputed on the server while the quantity is typed.
    page.get_by_role("link", name="Cart").first.click()
    expect(page.locator("#cart tfoot")).to_contain_text("$194.00")  # 200 x 0.82 + 100 x 0.30
    settled(page)
    page.get_by_label("Quantity of BOLT-M10").fill("300")
    expect(page.locator("#cart tfoot")).to_contain_text("$276.00")
    # Ship-to: only the buyer's own site is offered.
    ship_to = page.get_by_label("Ship to")
    expect(ship_to.locator("option", has_text="Plant A")).to_have_count(1)
    expect(ship_to.locator("option", has_text="Plant B")).to_have_count(0)
    page.get_by_label("Your PO number").fill("PO-4410")
    page.get_by_label("Notes").fill("Dock 3, mornings")
    screenshot(page, "cart-1280")
    _narrow(page, "cart")
    # A tampered form naming Plant B is refused.
    page.evaluate(
        "id => { const s = document.getElementById('site_id');"
        " s.add(new Option('Plant B', id)); s.value = id; }",
        str(plant_b.id),
    )
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_text("Choose one of your sites.")).to_be_visible()
    assert SalesOrder.select().count() == 0
    page.get_by_label("Ship to").select_option(label="Plant A (A)")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_text("is placed. We will confirm it.")).to_be_visible()
    order = SalesOrder.get()
    web = WebOrder.get(WebOrder.order == order.id)
    assert (order.status, order.site_id, order.total_cents) == ("submitted", plant_a.id, 27600)
    expect(page.get_by_text("We have your order")).to_be_visible()
    assert any(order.number in m["Subject"] for m in mailbox.wait_for(1))

    # The office accepts it and exports it for the ERP.
    staff_context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    staff_context.set_default_timeout(10_000)
    staff = staff_context.new_page()
    _sign_in(staff, "/staff/login", "sam@example.com")
    staff.goto("/staff/orders/?status=submitted")
    staff.get_by_role("link", name=order.number).click()
    staff.get_by_role("button", name="Accept order").click()
    expect(staff.get_by_text(f"Order {order.number} is accepted.")).to_be_visible()
    staff.goto("/staff/orders/")
    with staff.expect_download() as download:
        staff.get_by_role("button", name="Export accepted (1)").click()
    text = open(download.value.path(), encoding="utf-8").read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["item_code"] for r in rows} == {"BOLT-M10", "NUT-M10"}
    assert {r["portal_order"] for r in rows} == {web.number}
    staff.reload()
    expect(staff.get_by_role("button", name="Export accepted (0)")).to_be_disabled()
    staff_context.close()

    # The ERP's order comes back through the import, naming the portal order.
    result = importer.import_csv(
        "orders",
        io.StringIO(
            "number,account_number,site_code,order_date,status,customer_po,portal_order\n"
            f"SO-77120,ACME,A,2026-03-02,open,PO-4410,{web.number}\n"
        ),
    )
    assert result.ok, result.errors
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Orders").click()
    expect(page.get_by_role("link", name="SO-77120")).to_be_visible()
    expect(page.get_by_role("link", name=web.number)).to_have_count(0)
    page.get_by_role("link", name="SO-77120").click()
    expect(page.locator(".page-head")).to_contain_text("Open")
    screenshot(page, "order-linked-1280")

    # A shipment comes in through the shipments import: its packing slip is on the order.
    shipped = importer.import_csv(
        "shipments",
        io.StringIO(
            "order_number,number,shipped_on,carrier,tracking_number\n"
            "SO-77120,SH-5501,2026-03-03,UPS,1Z999AA10123456784\n"
        ),
    )
    assert shipped.ok, shipped.errors
    page.reload()
    page.get_by_role("link", name="Packing slip").click()
    expect(page.get_by_role("heading", name="Packing slip")).to_be_visible()
    expect(page.locator("#slip-SH-5501")).to_contain_text("Plant A")
    screenshot(page, "packing-slip-1280")
    _narrow(page, "packing-slip")
    page.go_back()

    # Reorder at today's prices: the bolt got dearer, and the cart says so.
    CustomerPrice.update(price_cents=90).where(CustomerPrice.product == bolt.id).execute()
    page.get_by_role("button", name="Order these items again").click()
    expect(page.get_by_text("Price changed: was $0.82, now $0.90")).to_be_visible()
    expect(page.locator("#cart tfoot")).to_contain_text("$300.00")  # 300 x 0.90 + 100 x 0.30
    screenshot(page, "reorder-1280")


def test_accept_a_quote_as_a_signature_then_follow_the_order(app, page):
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME")
    factories.portal_user(acme, email="pat@acme.example", first_name="Pat")
    quote = factories.quote(acme, lines=[(None, "Fixture rebuild", 1000, 95000)])

    _sign_in(page, "/login", "pat@acme.example")
    page.goto(f"/quotes/{quote.public_id}")
    settled(page)
    page.get_by_role("button", name="Sign and accept").click()
    expect(page.get_by_text("Type your full name to sign.")).to_be_visible()
    page.get_by_label("Your full name").fill("Pat Buyer")
    page.get_by_label("Your PO number (optional)").fill("PO-5512")
    page.get_by_label("I accept this quote").check()
    screenshot(page, "quote-sign-1280")
    _narrow(page, "quote-sign")
    page.get_by_role("button", name="Sign and accept").click()
    expect(page.get_by_text("You accepted this quote. We will confirm the order.")).to_be_visible()
    record = page.locator(".signature")
    expect(record).to_contain_text("Pat Buyer")
    expect(record).to_contain_text("PO-5512")
    expect(record).to_contain_text("127.0.0.1")
    screenshot(page, "quote-signed-1280")
    _narrow(page, "quote-signed")

    result = importer.import_csv(
        "orders",
        io.StringIO(
            "number,account_number,order_date,quote_number,customer_po\n"
            f"SO-88001,ACME,2026-03-02,{quote.number},PO-5512\n"
        ),
    )
    assert result.ok, result.errors
    page.reload()
    page.get_by_role("link", name="SO-88001").click()
    expect(page.get_by_role("heading", name="SO-88001")).to_be_visible()
