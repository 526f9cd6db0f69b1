"""Cases in Chromium: a photo on a case and its thumbnail for staff, a staff reply arriving
on the customer's open page without a reload, a question about an order ending on its
case, and a guest's quick request with a photo in the office's queue — with screenshots at
desktop and phone widths."""

import io
import re

from PIL import Image
from playwright.sync_api import expect

from portal.models import Case

from .. import factories
from .conftest import screenshot, settled

expect.set_options(timeout=15_000)


def _sign_in(page, path, email):
    page.goto(path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _photo(tmp_path, name="pallet.jpg"):
    image = Image.new("RGB", (800, 600), (180, 120, 40))
    for x in range(0, 800, 40):
        for y in range(0, 600, 40):
            if (x + y) // 40 % 2:
                image.paste((60, 90, 160), (x, y, x + 40, y + 40))
    path = tmp_path / name
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def _staff_page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    return context.new_page()


def _thumbnail_loaded(page, selector):
    expect(page.locator(selector).first).to_be_visible()
    width = page.locator(selector).first.evaluate("img => img.complete && img.naturalWidth")
    assert width and width > 0


def test_photo_thumbnail_for_staff_and_a_live_reply_for_the_customer(
    app, page, browser, live_server, tmp_path
):
    acme = factories.customer(name="Acme Manufacturing")
    factories.portal_user(acme, email="pat@acme.example", first_name="Pat")
    factories.staff(email="sam@example.com")

    _sign_in(page, "/login", "pat@acme.example")
    page.goto("/cases/new")
    page.get_by_label("Category").select_option("Delivery")
    page.get_by_label("Subject").fill("Crushed pallet")
    page.get_by_label("How can we help?").fill("Two boxes arrived crushed; photo attached.")
    page.get_by_label("Attach files").set_input_files(str(_photo(tmp_path)))
    screenshot(page, "cases-new-with-photo")
    page.get_by_role("button", name="Open case").click()
    expect(page.get_by_text(re.compile(r"Case CASE-\d+ is open"))).to_be_visible()
    _thumbnail_loaded(page, ".attachment img")
    case = Case.get()

    staff = _staff_page(browser, live_server)
    _sign_in(staff, "/staff/login", "sam@example.com")
    staff.goto("/staff/cases/")
    expect(staff.get_by_role("link", name=case.number)).to_be_visible()
    screenshot(staff, "cases-staff-queue")
    staff.get_by_role("link", name=case.number).click()
    _thumbnail_loaded(staff, ".attachment img")
    screenshot(staff, "cases-staff-case-thumbnail")

    # The customer's page stays open; staff answer; the reply appears without a reload.
    marker = page.evaluate("() => (window.__notReloaded = true)")
    assert marker
    staff.get_by_label("Message").fill("Sorry! Replacements ship today.")
    settled(staff)
    staff.get_by_role("button", name="Save", exact=True).click()
    expect(staff.get_by_text("the customer was emailed")).to_be_visible()
    expect(page.get_by_text("Sorry! Replacements ship today.")).to_be_visible(timeout=15_000)
    expect(page.locator(".case-status")).to_contain_text("Waiting for you")
    assert page.evaluate("() => window.__notReloaded") is True
    expect(page.locator("#hx-announcer")).to_contain_text("New message")
    screenshot(page, "cases-customer-live-reply")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "cases-customer-live-reply-phone")
    staff.context.close()


def test_question_about_an_order_ends_on_its_case_once(app, page):
    acme = factories.customer(name="Acme Manufacturing")
    factories.portal_user(acme, email="pat@acme.example")
    order = factories.order(acme)
    _sign_in(page, "/login", "pat@acme.example")
    page.goto(f"/orders/{order.public_id}")
    page.get_by_role("link", name=re.compile("Question about this order")).click()
    expect(page.get_by_role("heading", name="Open a case")).to_be_visible()
    page.get_by_label("How can we help?").fill("One carton is missing.")
    settled(page)
    page.get_by_role("button", name="Open case").dblclick()
    expect(page.get_by_role("heading", name=re.compile("Question about order"))).to_be_visible()
    expect(page.locator(".flash").first).to_contain_text("Case")
    assert Case.select().count() == 1
    assert page.url.endswith(f"/cases/{Case.get().public_id}")


def test_guest_quick_request_with_a_photo_reaches_the_queue(
    app, page, browser, live_server, tmp_path
):
    harbour = factories.customer(name="Harbour Dental", account_number="HD100")
    site = factories.site(harbour, site_code="NORTH", name="North clinic")
    factories.portal_user(harbour, email="office@harbour.example")
    invoice, code = factories.invoice(harbour, site=site)
    factories.staff(email="sam@example.com")

    page.goto("/login")
    page.get_by_role("link", name="Request service").click()
    expect(page.get_by_role("heading", name="Request service")).to_be_visible()
    page.get_by_label("Invoice number", exact=True).fill(invoice.number)
    page.get_by_label("Quick-pay code", exact=True).fill(code)
    page.get_by_label("Your name").fill("Sam Guest")
    page.get_by_label("Your email").fill("sam@guest.example")
    page.get_by_label("What do you need?").fill("The dental chair will not lift.")
    page.get_by_label("Photo").set_input_files(str(_photo(tmp_path, "chair.jpg")))
    screenshot(page, "cases-quick-request")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "cases-quick-request-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name="Thank you, we have your request")).to_be_visible()

    staff = _staff_page(browser, live_server)
    _sign_in(staff, "/staff/login", "sam@example.com")
    staff.goto("/staff/cases/")
    case = Case.get()
    expect(staff.get_by_text("Harbour Dental")).to_be_visible()
    staff.get_by_role("link", name=case.number).click()
    expect(staff.get_by_text("The dental chair will not lift.")).to_be_visible()
    _thumbnail_loaded(staff, ".attachment img")
    screenshot(staff, "cases-staff-quick-request")
    staff.context.close()


def test_a_refused_file_keeps_the_text_and_takes_the_focus_to_the_field(app, page, tmp_path):
    """A renamed file is refused next to the field; after the htmx swap the focus is on the
    field that needs attention and the reason is announced; the typed reply is kept."""
    acme = factories.customer(name="Acme Manufacturing")
    factories.portal_user(acme, email="pat@acme.example")
    _sign_in(page, "/login", "pat@acme.example")
    page.goto("/cases/new")
    page.get_by_label("Subject").fill("Invoice copy")
    page.get_by_label("How can we help?").fill("Please see the scan.")
    page.get_by_role("button", name="Open case").click()
    expect(page.get_by_text(re.compile(r"Case CASE-\d+ is open"))).to_be_visible()
    fake = tmp_path / "scan.png"
    fake.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n")
    page.get_by_label("Your reply").fill("The scan is attached.")
    page.get_by_label("Attach files").set_input_files(str(fake))
    settled(page)
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("scan.png is a PDF but its name says otherwise")).to_be_visible()
    expect(page.get_by_label("Attach files")).to_be_focused()
    expect(page.get_by_label("Your reply")).to_have_value("The scan is attached.")
    expect(page.locator("#hx-announcer")).to_contain_text("scan.png is a PDF")
    screenshot(page, "cases-refused-file")
