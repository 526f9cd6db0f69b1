"""Issue 19: axe-core (WCAG 2.x A and AA plus best practice) over every guest, customer and
staff page at 1280 and 390 px, and the W3C Nu HTML checker over the same pages' server
HTML. One world serves every page: a customer with open, paid and partly paid invoices, a
payment, a case with a reply, an RFQ and its published quote, orders, terms of use on the
login page, and a staff admin."""

import json
import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import current_app
from playwright.sync_api import expect

from portal import tokens
from portal.models import Case, OutboxMessage, Payment
from portal.services import cases, payments
from portal.services import settings as settings_service

from .. import factories, stripe_fixtures
from ..conftest import staff_login
from .conftest import settled
from .test_ordering_flow import _sign_in

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
WIDTHS = (1280, 390)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
CUSTOMER = "pat@acme.example"
STAFF = "boss@example.com"

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
stripe_live_server = stripe_fixtures.stripe_live_server


def _tool_missing(path: Path, what: str) -> None:
    """Skip (or fail under PORTAL_REQUIRE_BROWSER=1) when an npm tool is not installed."""
    if path.exists():
        return
    reason = f"{what} not found at {path} (make install)"
    if os.environ.get("PORTAL_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " and PORTAL_REQUIRE_BROWSER=1")
    pytest.skip(reason)


REVIEW = "pay review"  # a POST from the invoice list, not a page with its own address
NOT_FOUND = "/no-such-page"
MENU_OPEN = "/ with the phone menu open"  # the same HTML as "/"; at 390 px the menu opens
# Forms sent empty: the page with its error messages (a 422), and the button that sends it.
INVALID = {
    "/login sent empty": ("/login", "Sign in"),
    "/register/ sent empty": ("/register/", "Email me a sign-up link"),
    "/pay/ sent empty": ("/pay/", "Find my invoice"),
    "/request-service/ sent empty": ("/request-service/", "Send request"),
    "/cases/new sent empty": ("/cases/new", "Open case"),
    "/quotes/requests/new sent empty": ("/quotes/requests/new", "Send request"),
    "/staff/invoices/new sent empty": ("/staff/invoices/new", "Create invoice"),
    "/staff/customers/new sent empty": ("/staff/customers/new", "Create customer"),
}
# Customer pages as staff see them through "view as" (read-only, with the banner).
VIEWED = {"/ as seen by staff": "/", "/invoices/ as seen by staff": "/invoices/"}


def _world(app, client) -> dict:
    """Build the world every page is read in and return its pages by audience."""
    settings_service.update(
        {
            "login_terms": "Use this portal for **Acme** business only.",
            "require_terms_acceptance": True,
            "login_message": "Welcome to the *new* portal.",
            "bulletin_message": "**Closed** on Friday.",
        }
    )
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME-001")
    plant = factories.site(acme, site_code="NORTH", name="North depot")
    pat = factories.portal_user(acme, email=CUSTOMER, first_name="Pat", last_name="Lee")
    other = factories.portal_user(acme, email="kim@acme.example", first_name="Kim")
    invited = factories.portal_user(
        acme, email="dana@acme.example", status="invited", password=None
    )
    boss = factories.staff(email=STAFF, admin=True)
    today = date.today()
    open_invoice, code = factories.invoice(acme, number="INV-1001", total_cents=125_000, site=plant)
    factories.invoice(acme, number="INV-1002", total_cents=48_250, paid_cents=20_000)
    factories.invoice(
        acme,
        number="INV-0990",
        total_cents=30_000,
        paid_cents=30_000,
        issue_date=today - timedelta(days=60),
    )
    factories.invoice(
        acme, number="INV-0950", total_cents=9_900, issue_date=today - timedelta(days=70)
    )
    with app.test_request_context():
        checkout = payments.checkout(
            acme, [(open_invoice, 25_000)], "offline", "Pat Lee", CUSTOMER, portal_user=pat
        )
        payment = Payment.get(Payment.attempt == checkout.attempt.id)
        payments.confirm_offline(payment, boss)
    bolt = factories.product(
        item_code="BOLT-M10", description="Hex bolt M10", price_cents=95, available_quantity=500
    )
    factories.product(item_code="NUT-M10", description="Hex nut M10", price_cents=30)
    order = factories.order(
        acme,
        site=plant,
        lines=[("Hex bolt M10", 10_000, 4_000, 95), ("Washer", 5_000, 0, 10)],
        shipments=[("UPS", "1Z999AA10123456784")],
    )
    rfq = factories.rfq(acme, user=pat, lines=[(bolt, "Hex bolt M10", 100_000)])
    unanswered = factories.rfq(acme, user=pat, lines=[(None, "Custom bracket", 4_000)])
    quote = factories.quote(acme, rfq_=rfq, lines=[(bolt, "Hex bolt M10", 100_000, 90)])
    draft = factories.quote(acme, status="draft")
    case = cases.create_case(pat, "Damaged pallet", "Two boxes arrived crushed.", order=order)

    # The rest the way people make it: staff reply, a cart, a web order, a reset request.
    staff_login(client, STAFF)
    client.post(
        f"/staff/cases/{case.id}/reply",
        data={"body": "A replacement ships today.", "status": "waiting"},
    )
    client.post("/staff/logout")
    client.post(
        "/login", data={"email": CUSTOMER, "password": factories.PASSWORD, "accept_terms": "y"}
    )
    client.post(f"/catalog/add/{bolt.item_code}", data={"quantity": "20"})
    client.post("/cart/checkout", data={"site_id": plant.id})
    client.post(f"/catalog/add/{bolt.item_code}", data={"quantity": "5"})
    client.post("/logout")
    assert Case.get_by_id(case.id).status == "waiting"

    staff_pages = [
        "/staff/",
        "/staff/customers/",
        f"/staff/customers/{acme.id}",
        f"/staff/customers/{acme.id}/edit",
        f"/staff/customers/{acme.id}/contacts/new",
        f"/staff/customers/{acme.id}/sites/new",
        f"/staff/customers/contacts/{other.contact_id}/edit",
        f"/staff/customers/contacts/{other.contact_id}/access",
        f"/staff/customers/sites/{plant.id}/edit",
        "/staff/customers/new",
        "/staff/invoices/",
        f"/staff/invoices/{open_invoice.id}",
        f"/staff/invoices/{open_invoice.id}/edit",
        "/staff/invoices/new",
        "/staff/payments/",
        f"/staff/payments/{payment.id}",
        "/staff/import/",
        "/staff/outbox/",
        "/staff/requests/",
        "/staff/cases/",
        f"/staff/cases/{case.id}",
        "/staff/quotes/",
        "/staff/quotes/list",
        f"/staff/quotes/rfqs/{rfq.id}",
        f"/staff/quotes/rfqs/{unanswered.id}/quote",
        f"/staff/quotes/{quote.id}",
        f"/staff/quotes/{draft.id}/edit",
        "/staff/quotes/new",
        "/staff/orders/",
        f"/staff/orders/{order.id}",
        "/staff/autopay/",
        "/staff/settings/",
        "/staff/settings/emails/invitation",
        "/staff/users/",
        "/staff/users/new",
        f"/staff/users/{boss.id}",
        "/staff/users/customer-two-step",
        "/staff/audit/",
        "/staff/alerts/",
    ]
    first_mail = OutboxMessage.select().order_by(OutboxMessage.id).first()
    if first_mail is not None:
        staff_pages.append(f"/staff/outbox/{first_mail.id}")
    return {
        "review invoice": open_invoice.public_id,
        "guest": [
            "/login",
            "/register/",
            "/register/sent",
            "/password/forgot",
            "/password/sent",
            "/request-access/",
            "/request-access/sent",
            "/request-service/",
            "/request-service/sent",
            "/pay/",
            "/pay/link",
            "/staff/login",
            _link("invite", "/invitation/", invited),
            _link("reset", "/reset/", pat),
            "/pay/invoice",  # after the lookup, which every guest visit starts with
            NOT_FOUND,
            "/login sent empty",
            "/register/ sent empty",
            "/pay/ sent empty",
            "/request-service/ sent empty",
        ],
        "quick pay": ("INV-1001", code),
        "customer": [
            "/",
            MENU_OPEN,
            "/invoices/",
            f"/invoices/{open_invoice.public_id}",
            f"/invoices/{open_invoice.public_id}/print",
            "/invoices/credit",
            REVIEW,
            "/statements/",
            "/statements/aging",
            "/statements/payments",
            f"/statements/payments/{payment.public_id}",
            "/quotes/",
            f"/quotes/{quote.public_id}",
            f"/quotes/requests/{rfq.public_id}",
            "/quotes/requests/new",
            "/catalog/",
            f"/catalog/item/{bolt.item_code}",
            "/cart/",
            "/orders/",
            f"/orders/{order.public_id}",
            "/cases/",
            "/cases/new",
            f"/cases/{case.public_id}",
            "/company/",
            "/company/users/new",
            f"/company/users/{other.public_id}",
            "/account/",
            "/account/two-step/app",
            "/cases/new sent empty",
            "/quotes/requests/new sent empty",
        ],
        "staff": [
            *staff_pages,
            "/staff/invoices/new sent empty",
            "/staff/customers/new sent empty",
            *VIEWED,
        ],
        "view as": (f"/staff/view-as/customers/{acme.id}", {"login": str(pat.id)}),
    }


def _link(purpose: str, prefix: str, user) -> str:
    """A password link as emailed: it lands on its page with the token kept in the session."""
    return prefix + tokens.make(purpose, {"u": user.id, "s": tokens.state_digest(user.auth_stamp)})


def _fetch(app, client, world) -> dict[str, str]:
    """Each page's server HTML by its path, fetched by its audience; each must answer."""
    pages = {}

    def keep(label, response, status=200):
        assert response.status_code == status, (label, response.status_code)
        pages[label] = response.get_data(as_text=True)

    def get(path):
        if path == MENU_OPEN:
            return
        if path in INVALID:
            keep(path, client.post(INVALID[path][0], data={}), 422)
        else:
            keep(path, client.get(path, follow_redirects=True), 404 if path == NOT_FOUND else 200)

    number, code = world["quick pay"]
    assert client.post("/pay/", data={"number": number, "secret": code}).status_code == 303
    for path in world["guest"]:
        get(path)
    client.post("/login", data={"email": CUSTOMER, "password": factories.PASSWORD})
    for path in world["customer"]:
        if path == REVIEW:
            response = client.post("/invoices/review", data={"invoice": world["review invoice"]})
            keep(REVIEW, response)
        else:
            get(path)
    client.post("/logout")
    staff_login(client, STAFF)
    for path in world["staff"]:
        if path in VIEWED:
            url, data = world["view as"]
            assert client.post(url, data=data).status_code == 303
            path, label = VIEWED[path], path
            keep(label, client.get(path))
            assert "Viewing as" in pages[label], label
        else:
            get(path)
    return pages


def _label(path: str) -> str:
    return path.strip("/").replace("/", "_").replace(" ", "-") or "home"


def _validate(pages: dict[str, str], folder: Path) -> list[str]:
    """Run the Nu HTML checker once over all pages; its errors but htmx's, as 'page:line: …'."""
    _tool_missing(VNU, "vnu.jar (npm vnu-jar)")
    java = shutil.which("java")
    if java is None:
        _tool_missing(Path("/nonexistent/java"), "Java")
    folder.mkdir()
    files = {}
    for path, html in pages.items():
        target = folder / f"{_label(path)}.html"
        target.write_text(html, encoding="utf-8")
        files[str(target)] = path
    run = subprocess.run(
        [java, "-jar", str(VNU), "--format", "json", "--errors-only", *sorted(files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    messages = json.loads(run.stderr)["messages"]  # the checker reports on stderr
    return [
        f"{files[Path(m['url'].removeprefix('file:')).as_posix()]}:{m.get('lastLine')}: "
        f"{m['message']}"
        for m in messages
        if not _about_htmx(m["message"])
    ]


def test_the_html_checker_finds_no_errors(app, tmp_path):
    """Nu HTML checker over every page's server HTML: no errors but htmx's hx-* attributes."""
    client = app.test_client()
    errors = _validate(_fetch(app, client, _world(app, client)), tmp_path / "html")
    assert errors == [], "\n".join(errors)


def _about_htmx(message: str) -> bool:
    """The checker does not know htmx's attributes: 'Attribute “hx-get” not allowed …'."""
    return message.startswith("Attribute \u201chx-") and "not allowed" in message


def _open(page, path, world):
    """Open a page the way a person reaches it; the pay review from the invoice list."""
    if path in VIEWED:
        url, data = world["view as"]
        assert page.request.post(url, form=data).ok
        path = VIEWED[path]
    if path == MENU_OPEN:
        page.goto("/")
        menu = page.get_by_role("navigation", name="Main").get_by_role("button", name="Menu")
        if menu.is_visible():
            menu.click()
            expect(menu).to_have_attribute("aria-expanded", "true")
        return
    if path in INVALID:
        url, button = INVALID[path]
        page.goto(url)
        page.locator("main").get_by_role("button", name=button, exact=True).click()
        expect(page.locator("main .error, main .alert-error").first).to_be_visible()
        return
    if path == REVIEW:
        page.goto("/invoices/")
        page.locator(".pick").first.check()
        page.get_by_role("button", name="Review and pay selected").click()
        expect(page.get_by_role("group", name="Payment method")).to_be_visible()
        return
    response = page.goto(path)
    assert response.status == (404 if path == NOT_FOUND else 200), (path, response.status)


def _axe(page, where: str) -> list[str]:
    """Run axe-core in the page; one line per violation: page, width, rule, impact, targets.

    The script goes in through DevTools (`evaluate`), which the page's CSP does not govern;
    a <script> tag with its text (`add_script_tag`) would be an inline script it blocks."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags},
                                      resultTypes: ['violations']})""",
        AXE_TAGS,
    )
    return [
        f"{where} {v['id']} ({v['impact']}): "
        + "; ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:8])
        for v in result["violations"]
    ]


def _scan(browser, base_url: str, world: dict, audience: str) -> list[str]:
    """axe-core over the audience's pages at each width, in one browser context a width."""
    _tool_missing(AXE, "axe-core (npm)")
    found = []
    for width in WIDTHS:
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 860})
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.on("pageerror", lambda exc, width=width: found.append(f"@{width}px script: {exc}"))
        try:
            if audience == "customer":
                _sign_in(page, "/login", CUSTOMER)
            elif audience == "staff":
                _sign_in(page, "/staff/login", STAFF)
            else:
                number, code = world["quick pay"]
                page.goto("/pay/")
                page.get_by_label("Invoice number").fill(number)
                page.get_by_label("Quick-pay code").fill(code)
                page.get_by_role("button", name="Find my invoice").click()
                expect(page).to_have_url(base_url + "/pay/invoice")
            for path in world[audience]:
                _open(page, path, world)
                settled(page)
                found.extend(_axe(page, f"{path} @{width}px"))
        finally:
            context.close()
    return found


@pytest.mark.parametrize("audience", ["guest", "customer", "staff"])
def test_axe_finds_no_violations(app, browser, live_server, audience):
    """axe-core over every page of the audience at a desk (1280 px) and on a phone (390 px)."""
    found = _scan(browser, live_server.url, _world(app, app.test_client()), audience)
    assert found == [], "\n".join(found)


def test_with_stripe_on_the_card_pages_pass_both_checkers(browser, stripe_live_server, tmp_path):
    """With Stripe on, the pages that offer a card or keep one: the pay review and the quick
    pay page (a card option), My account (saved cards) and autopay for the customer and the
    office."""
    app = current_app._get_current_object()
    client = app.test_client()
    world = _world(app, client)
    world.update(
        guest=["/pay/invoice"],
        customer=[REVIEW, "/account/", "/company/autopay/"],
        staff=["/staff/autopay/"],
    )
    found = []
    for audience in ("guest", "customer", "staff"):
        found += _scan(browser, stripe_live_server.url, world, audience)
    found += _validate(_fetch(app, client, world), tmp_path / "html")
    assert found == [], "\n".join(found)
