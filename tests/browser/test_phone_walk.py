"""Issue 19: a customer's walk on a phone (390 px) — sign in, the dashboard, invoices, two
invoices ticked and paid through to the review page, a case opened and replied to, the menu
opened and used — and on every page no element is wider than the screen."""

import re

from playwright.sync_api import expect

from .. import factories
from .conftest import screenshot, settled

WIDTH = 390

# Every element that reaches past the viewport's right edge, except those inside a box that
# scrolls sideways on purpose (a wide table in its .table-wrap).
TOO_WIDE = """() => {
  const limit = window.innerWidth + 0.5;
  const inScroller = (e) => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (x === 'auto' || x === 'scroll') return true;
    }
    return false;
  };
  const wide = [];
  for (const e of document.body.querySelectorAll('*')) {
    const box = e.getBoundingClientRect();
    if (!box.width && !box.height) continue;
    if (box.right <= limit || inScroller(e)) continue;
    wide.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}` +
              `${e.classList.length ? '.' + [...e.classList].join('.') : ''}` +
              ` right=${Math.round(box.right)}`);
  }
  const scrolled = [...document.querySelectorAll('.table-wrap')]
    .filter(w => w.scrollWidth > w.clientWidth + 1)
    .map(w => (w.querySelector('caption') || w).textContent.trim().slice(0, 60));
  return {wide, scrollWidth: document.documentElement.scrollWidth, scrolled};
}"""


def fits(page, name):
    """Nothing on the page is wider than the phone's screen; keep a screenshot of it."""
    settled(page)
    found = page.evaluate(TOO_WIDE)
    assert found["wide"] == [], (name, found["wide"])
    assert found["scrollWidth"] <= WIDTH, (name, found["scrollWidth"])
    # The walk's tables fit too: what is owed and paid never hides behind a sideways scroll.
    assert found["scrolled"] == [], (name, found["scrolled"])
    screenshot(page, f"phone-walk-{name}", full_page=True)


def menu(page, item):
    """Open the folded main menu and follow one of its links."""
    nav = page.get_by_role("navigation", name="Main")
    button = nav.get_by_role("button", name="Menu")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    fits(page, f"menu-open-for-{item.lower().replace(' ', '-')}")
    nav.get_by_role("link", name=item, exact=True).click()
    expect(button).to_have_attribute("aria-expanded", "false")


def test_a_customer_walks_the_portal_on_a_phone(browser, live_server):
    customer = factories.customer(name="Acme Manufacturing International Holdings")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    for number, description in (
        ("INV-8001", "Pump overhaul parts and a very long description of the work done"),
        ("INV-8002", "Seals"),
        ("INV-8003", ""),
    ):
        factories.invoice(
            customer,
            number=number,
            description=description,
            customer_po="PO-778812345",
            total_cents=1_234_567_89,
        )
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": WIDTH, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    try:
        page.goto("/login")
        fits(page, "sign-in")
        page.get_by_label("Email").fill("pat@acme.example")
        page.get_by_label("Password").fill(factories.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
        fits(page, "dashboard")

        menu(page, "Invoices")
        expect(page.get_by_role("heading", name="Invoices", level=1)).to_be_visible()
        fits(page, "invoices")
        page.get_by_label("Select INV-8001").check()
        page.get_by_label("Select INV-8002").check()
        page.get_by_role("button", name="Review and pay selected").click()
        expect(page.get_by_role("heading", name="Review your payment")).to_be_visible()
        expect(page.get_by_text("INV-8001").first).to_be_visible()
        expect(page.get_by_text("INV-8002").first).to_be_visible()
        fits(page, "review")

        menu(page, "Support")
        expect(page.get_by_role("heading", name="Support cases")).to_be_visible()
        fits(page, "cases")
        page.get_by_role("link", name="Open a case").first.click()
        fits(page, "case-new")
        page.get_by_label("Subject").fill("Two crushed boxes on the last pallet delivered")
        page.get_by_label("How can we help?").fill("The pallet arrived with two boxes crushed.")
        page.get_by_role("button", name="Open case").click()
        expect(page.get_by_text(re.compile(r"CASE-\d+ is open"))).to_be_visible()
        fits(page, "case")
        page.get_by_label("Your reply").fill("A photo of the boxes follows by email.")
        page.get_by_role("button", name="Send reply").click()
        expect(page.get_by_text("A photo of the boxes follows by email.")).to_be_visible()
        fits(page, "case-replied")
        page.get_by_role("link", name="Support cases").first.click()
        expect(page.get_by_role("link", name=re.compile(r"CASE-\d+"))).to_be_visible()
        fits(page, "cases-with-one")

        menu(page, "My account")
        expect(page.get_by_role("heading", name="My account")).to_be_visible()
        fits(page, "account")
    finally:
        context.close()
    assert problems == [], problems
