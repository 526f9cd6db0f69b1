"""A customer asks for a quote, staff price and publish it, the customer accepts it and then
follows the order and its shipment — in Chromium, with screenshots of the quote pages."""

from playwright.sync_api import expect

from portal.models import CustomerPrice, Quote

from .. import factories
from .conftest import screenshot, settled


def _sign_in(page, path, email):
    page.goto(path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_request_price_publish_accept_and_follow_the_order(
    app, page, browser, live_server, mailbox
):
    acme = factories.customer(name="Acme Manufacturing")
    plant = factories.site(acme, name="Plant 1")
    factories.portal_user(acme, email="pat@acme.example", first_name="Pat")
    factories.staff(email="sam@example.com")
    bracket = factories.product(
        item_code="BRKT-200", description="Steel mounting bracket 200 mm", price_cents=1290
    )
    CustomerPrice.create(customer=acme, product=bracket, price_cents=1250)

    # The customer asks for a quote: one catalog item, one in their own words.
    _sign_in(page, "/login", "pat@acme.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Quotes").click()
    page.get_by_role("link", name="Request a quote").first.click()
    expect(page.get_by_label("Quantity, item 1")).to_be_visible()
    settled(page)
    page.get_by_label("Product, item 1").select_option(label=f"BRKT-200 · {bracket.description}")
    page.get_by_label("Quantity, item 1").fill("400")
    page.get_by_label("Description, item 2").fill("Welding jig for the bracket")
    page.get_by_label("Quantity, item 2").fill("abc")
    page.get_by_label("Deliver to").select_option(label="Plant 1")
    page.get_by_label("Notes").fill("For the new press line.")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_text("Enter a quantity like 2 or 2.5.")).to_be_visible()
    expect(page.get_by_label("Description, item 2")).to_have_value("Welding jig for the bracket")
    page.get_by_label("Quantity, item 2").fill("1")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_text("We are working on it")).to_be_visible()

    # Staff price it (customer price prefilled), save a draft and publish it.
    staff_context = browser.new_context(base_url=live_server.url)
    staff_context.set_default_timeout(10_000)
    staff = staff_context.new_page()
    staff.on("dialog", lambda dialog: dialog.accept())
    _sign_in(staff, "/staff/login", "sam@example.com")
    staff.goto("/staff/quotes/")
    staff.get_by_role("link", name="Create quote for").first.click()
    expect(staff.get_by_label("Unit price, line 1")).to_have_value("12.50")
    staff.get_by_label("Unit price, line 2").fill("380.00")
    staff.get_by_label("Notes for the customer").fill("Lead time two weeks.")
    staff.get_by_role("button", name="Save draft").click()
    expect(staff.get_by_text("Drafts are not visible to the customer.")).to_be_visible()
    staff.get_by_role("button", name="Publish and email the customer").click()
    expect(staff.get_by_text("the customer was emailed")).to_be_visible()
    staff_context.close()
    # Before it: the request's acknowledgement to Pat and its office alert to Sam (issue 18).
    (message,) = [m for m in mailbox.wait_for(3) if "is ready" in m["Subject"]]
    assert message["To"] == "pat@acme.example"
    quote = Quote.get()
    assert quote.total_cents == 400 * 1250 + 38000 and quote.site_id == plant.id

    # The customer reads the quote and accepts it.
    page.goto("/quotes/")
    screenshot(page, "quotes-list")
    page.get_by_role("link", name=quote.number, exact=True).click()
    expect(page.get_by_text("$5,380.00").first).to_be_visible()
    screenshot(page, "quote-show")
    page.get_by_label("Your full name").fill("Pat Buyer")
    page.get_by_label("I accept this quote").check()
    page.get_by_role("button", name="Sign and accept").click()
    expect(page.get_by_text("You accepted this quote")).to_be_visible()
    assert Quote.get_by_id(quote.id).status == "accepted"

    # The office turned it into an order in the ERP; the customer follows the shipment.
    order = factories.order(
        acme,
        site=plant,
        quote=quote,
        status="partially_shipped",
        customer_po="PO-7781",
        lines=[("Steel mounting bracket 200 mm", 400_000, 150_000, 1250)],
        shipments=[("UPS", "1Z999AA10123456784")],
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Orders").click()
    page.get_by_label("Search orders").fill("7781")
    page.get_by_role("main").get_by_role("button", name="Search").click()  # not the menu's
    page.get_by_role("link", name=order.number, exact=True).click()
    expect(page.get_by_text("1Z999AA10123456784")).to_be_visible()
    expect(page.get_by_role("link", name=quote.number, exact=True)).to_be_visible()
    screenshot(page, "order-show")


def test_office_starts_a_quote_picking_the_customer_as_it_types(app, page, live_server):
    """No request behind it: staff type part of a name, the suggestions fill in, picking one
    offers that customer's sites, and the draft is saved for that customer and site."""
    acme = factories.customer(account_number="ACME-01", name="Acme Manufacturing")
    factories.customer(account_number="BIRCH", name="Birchwood Dental")
    factories.site(acme, site_code="P2", name="Plant 2")
    factories.staff(email="sam@example.com")
    _sign_in(page, "/staff/login", "sam@example.com")
    page.goto("/staff/quotes/list")
    page.get_by_role("link", name="New quote").click()
    box = page.get_by_label("Customer", exact=True)
    expect(box).to_be_visible()
    settled(page)
    box.press_sequentially("manuf", delay=30)
    option = page.locator("#customer-options option")
    expect(option).to_have_count(1)
    expect(option).to_have_attribute("value", "ACME-01 · Acme Manufacturing")
    box.fill("ACME-01 · Acme Manufacturing")  # what picking the suggestion types
    expect(page.locator("#site_id option", has_text="P2 · Plant 2")).to_have_count(1)
    page.get_by_label("Site").select_option(label="P2 · Plant 2")
    page.get_by_label("Description, line 1").fill("Fixture rebuild")
    page.get_by_label("Quantity, line 1").fill("1")
    page.get_by_label("Unit price, line 1").fill("950.00")
    screenshot(page, "staff-quote-new")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Drafts are not visible to the customer.")).to_be_visible()
    quote = Quote.get()
    assert (quote.customer_id, quote.site.name, quote.total_cents) == (acme.id, "Plant 2", 95000)
