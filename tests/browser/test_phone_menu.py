"""Issue 19: on a phone (390 px) the main menu folds behind a "Menu" button instead of
scrolling sideways with items cut off; at a desk the links show and there is no button; no
page scrolls sideways."""

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot


def _sign_in(page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    factories.invoice(customer, number="INV-8001")
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()


def test_the_phone_menu_opens_every_item_and_nothing_scrolls_sideways(page):
    _sign_in(page)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("button", name="Menu")).to_be_hidden()  # a desk: the links show
    expect(nav.get_by_role("link", name="My account")).to_be_visible()

    page.set_viewport_size({"width": 390, "height": 844})
    menu = nav.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(nav.get_by_role("link", name="Invoices")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("Home", "Invoices", "Statements", "Support", "Company", "My account"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    screenshot(page, "phone-menu-open", full_page=False)
    nav.get_by_role("link", name="My account").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    expect(nav.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")
    for path in ("/", "/invoices/", "/account/"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_without_javascript_the_phone_menu_links_wrap(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    page = context.new_page()
    try:
        _sign_in(page)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("button", name="Menu")).to_be_hidden()
        expect(nav.get_by_role("link", name="My account")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
