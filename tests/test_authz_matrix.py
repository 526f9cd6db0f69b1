"""The authorization matrix (checklist E1, E2, E5): every customer route and fragment x each
role x own / other-company / out-of-scope-site object, against the designed answer.

MATRIX says, per (endpoint, method), which role it needs and what a permitted request
answers; URL_ARGS says how to build each URL argument for the three kinds of object. The
guard test fails when a customer route exists that the matrix does not cover, so a new
route cannot ship without its row.

Designed answers: a guest is sent to sign in (302, or 204 + HX-Redirect for htmx); a staff
login gets 403; a missing role 403; another company's object, or an object of a site
outside the login's scope, 404 (existence is not revealed); otherwise the `ok` statuses.
"""

import io
from dataclasses import dataclass, field

import pytest
from flask import url_for
from PIL import Image
from werkzeug.datastructures import FileStorage

from portal.models import (
    PORTAL_ROLES,
    Case,
    CaseMessage,
    Invoice,
    Payment,
    PaymentApplication,
    PortalUser,
)
from portal.services import attachments, cases

from . import factories
from .conftest import HX, login, staff_login

GET_OK = (200,)
# POSTs are sent empty: a permitted one answers its form error (422), a redirect after an
# action (303), or 400 for a request that is not a form of that page.
POST_OK = (303, 400, 422)


@dataclass(frozen=True)
class Route:
    role: str | None  # the role customer_required asks for (None: any customer login)
    ok: tuple = GET_OK
    # Roles also needed, checked inside the view; a login without them gets 404.
    also: tuple = field(default=())
    # The company's own (credit): a site-limited login gets 404.
    whole_account: bool = False


MATRIX = {
    # My account (issue 4)
    ("account.index", "GET"): Route(None),
    ("account.update", "POST"): Route(None, POST_OK),
    ("account.password", "POST"): Route(None, POST_OK),
    # Saved cards exist only with Stripe on, which this matrix's app is not: 404 for all
    # (tests/test_saved_cards.py covers them with Stripe, another company's card included).
    ("account.save_card", "POST"): Route(None, (404,)),
    ("account.card_saved", "GET"): Route(None, (404,)),
    ("account.remove_card", "POST"): Route(None, (404,)),
    # Sign-in security: two-step sign-in, passkeys, recovery codes, the company's rule.
    ("account.authenticator", "GET"): Route(None),
    ("account.authenticator", "POST"): Route(None, POST_OK),
    ("account.authenticator_off", "POST"): Route(None, POST_OK),
    ("account.passkey_options", "POST"): Route(None, (200,)),
    ("account.add_passkey", "POST"): Route(None, POST_OK),
    ("account.remove_passkey", "POST"): Route(None, POST_OK),
    ("account.recovery_codes", "POST"): Route(None, POST_OK),
    ("account.company_rule", "POST"): Route("company_admin", POST_OK),
    ("account.notices", "POST"): Route(None, POST_OK),  # email notices (issue 18)
    # Company administration (issue 4)
    ("company.index", "GET"): Route("company_admin"),
    ("company.new", "GET"): Route("company_admin"),
    ("company.new", "POST"): Route("company_admin", POST_OK),
    ("company.edit", "GET"): Route("company_admin"),
    ("company.edit", "POST"): Route("company_admin", POST_OK),
    ("company.approve", "POST"): Route("company_admin", POST_OK),
    ("company.deactivate", "POST"): Route("company_admin", POST_OK),
    ("company.reactivate", "POST"): Route("company_admin", POST_OK),
    ("company.reject", "POST"): Route("company_admin", POST_OK),
    ("company.resend", "POST"): Route("company_admin", POST_OK),
    # Autopay charges saved cards: Stripe only, which this matrix's app is not (404 once the
    # role is there); tests/test_autopay.py covers it with Stripe.
    ("autopay.show", "GET"): Route("company_admin", (404,)),
    ("autopay.update", "POST"): Route("company_admin", (404,)),
    ("autopay.turn_off", "POST"): Route("company_admin", (404,)),
    # Billing (issue 5)
    ("billing.index", "GET"): Route("invoices"),
    ("billing.export", "GET"): Route("invoices"),
    ("billing.show", "GET"): Route("invoices"),
    ("billing.printable", "GET"): Route("invoices"),
    ("billing.total", "POST"): Route("invoices", (200, 422)),
    ("billing.review", "POST"): Route("invoices", POST_OK),
    ("billing.pay", "POST"): Route("invoices", POST_OK),
    # "Try again" names the login's own failed attempt (?attempt=): without one, 404 for all;
    # tests/test_payment_retry.py covers the payer's own, a colleague's and another company's.
    ("billing.retry", "GET"): Route("invoices", (404,)),
    ("billing.question", "POST"): Route("cases", POST_OK, also=("invoices",)),
    ("billing.credit", "GET"): Route("invoices", whole_account=True),
    ("billing.credit", "POST"): Route("invoices", POST_OK, whole_account=True),
    # Statements (issue 5)
    ("statements.index", "GET"): Route("statements"),
    ("statements.export", "GET"): Route("statements"),
    ("statements.aging", "GET"): Route("statements"),
    ("statements.payments", "GET"): Route("statements"),
    ("statements.receipt", "GET"): Route("statements"),
    # Support cases
    ("cases.index", "GET"): Route("cases"),
    ("cases.new", "GET"): Route("cases"),
    ("cases.new", "POST"): Route("cases", POST_OK),
    ("cases.show", "GET"): Route("cases"),
    ("cases.reply", "POST"): Route("cases", POST_OK),
    ("cases.resolve", "POST"): Route("cases", POST_OK),
    ("cases.live", "GET"): Route("cases"),
    # Attachment files: the owner decides (a case message: the cases role and the case).
    ("attachments.show", "GET"): Route(None, also=("cases",)),
    ("attachments.thumb", "GET"): Route(None, also=("cases",)),
    # Quotes and requests for quote
    ("quotes.index", "GET"): Route("quotes"),
    ("quotes.new", "GET"): Route("quotes"),
    ("quotes.new", "POST"): Route("quotes", POST_OK),
    ("quotes.rfq", "GET"): Route("quotes"),
    ("quotes.show", "GET"): Route("quotes"),
    ("quotes.accept", "POST"): Route("quotes", POST_OK),
    ("quotes.decline", "POST"): Route("quotes", POST_OK),
    ("quotes.withdraw", "POST"): Route("quotes", POST_OK),
    ("quotes.reorder", "POST"): Route("quotes", POST_OK, also=("orders",)),
    # Orders
    ("orders.index", "GET"): Route("orders"),
    ("orders.show", "GET"): Route("orders"),
    ("orders.reorder", "POST"): Route("orders", POST_OK),
    ("orders.packing_slips", "GET"): Route("orders"),
    # Catalog, cart and checkout (issue 20); a withdrawn product is the "other" object
    ("catalog.index", "GET"): Route("orders"),
    ("catalog.show", "GET"): Route("orders"),
    ("catalog.add", "POST"): Route("orders", POST_OK),
    ("cart.index", "GET"): Route("orders"),
    ("cart.update", "POST"): Route("orders", (200, 303, 422)),  # htmx: the cart again
    ("cart.remove", "POST"): Route("orders", POST_OK),
    ("cart.checkout", "POST"): Route("orders", POST_OK),
    # One search over the account (issue 19): any login, each kind by its own role
    ("search.index", "GET"): Route(None),
}

# Blueprints that are not the signed-in customer area.
NOT_CUSTOMER = {"auth", "staff", "quickpay", "payments", "test_checkout", "health"}
# Customer-facing endpoints that are public on purpose (guests use them).
PUBLIC = {
    "home.index",  # the landing page for guests, the home for customers (tested elsewhere)
    "register.new",
    "register.sent",
    "register.confirm",
    "register.finish",
    "access.new",
    "access.sent",
    "password.forgot",
    "password.sent",
    "password.reset",
    "password.choose",
    "password.invitation",
    "password.welcome",
    "quick_request.new",
    "quick_request.sent",
    "notices.unsubscribe",  # the signed one-click unsubscribe link (tests/test_notices_core.py)
    "notices.unsubscribe_post",
}
# How to build each URL argument: the object a login of the first company owns, one of
# another company, and one of its own company at a site outside a site-limited login.
URL_ARGS = {
    "invoice_id": ("invoice", "invoice_other", "invoice_site"),
    "payment_id": ("payment", "payment_other", "payment_site"),
    "user_id": ("colleague", "user_other", None),
    "case_id": ("case", "case_other", "case_site"),
    "quote_id": ("quote", "quote_other", "quote_site"),
    "rfq_id": ("rfq", "rfq_other", "rfq_site"),
    "order_id": ("order", "order_other", "order_site"),
    "item_code": ("product", "product_withdrawn", None),
    "key": ("attachment", "attachment_other", "attachment_site"),
}
VARIANTS = ("own", "other", "site")
# The logins: one per role (whole account), one with every role, one limited to site A.
LOGINS = [*PORTAL_ROLES, "all", "site"]


def is_customer_route(view) -> bool:
    """True when `customer_required` guards the view (looked up through the wrappers)."""
    while view is not None:
        code = getattr(view, "__code__", None)
        if code is not None and code.co_qualname.startswith("customer_required."):
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def customer_routes(app) -> set[tuple[str, str]]:
    """(endpoint, method) of every route of the customer area, plus any guarded route."""
    found = set()
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        blueprint = endpoint.rsplit(".", 1)[0] if "." in endpoint else ""
        in_area = (
            blueprint
            and blueprint.split("_")[0] not in NOT_CUSTOMER
            and blueprint not in NOT_CUSTOMER
            and endpoint not in PUBLIC
        )
        if in_area or is_customer_route(app.view_functions[endpoint]):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                found.add((endpoint, method))
    return found


def test_every_customer_route_is_in_the_matrix(app):
    """E1: a customer route without a matrix row fails here."""
    routes = customer_routes(app)
    missing = sorted(routes - set(MATRIX))
    assert missing == [], f"add these to MATRIX in tests/test_authz_matrix.py: {missing}"
    stale = sorted(set(MATRIX) - routes)
    assert stale == [], f"these MATRIX rows name no customer route: {stale}"


def test_every_matrix_route_is_guarded_and_its_arguments_are_known(app):
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    for endpoint, _ in MATRIX:
        assert is_customer_route(app.view_functions[endpoint]), endpoint
        unknown = set(rules[endpoint].arguments) - set(URL_ARGS)
        assert not unknown, f"{endpoint}: add {unknown} to URL_ARGS"


def test_public_routes_are_not_guarded(app):
    for endpoint in PUBLIC:
        assert not is_customer_route(app.view_functions[endpoint]), endpoint


# --- the world ------------------------------------------------------------------------------


def _payment(customer, invoice, n):
    payment = Payment.create(
        receipt_number=f"R-M{n}",
        provider="offline",
        provider_reference=f"matrix-{n}",
        customer=customer,
        amount_cents=1000,
        currency="USD",
        status="applied",
    )
    PaymentApplication.create(payment=payment, invoice=invoice, amount_cents=1000)
    return payment


def _attachment(case_id) -> str:
    """The key of a photo on a message of that case."""
    message = CaseMessage.create(case=case_id, body="See the photo")
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    png.seek(0)
    (item,) = attachments.prepare([FileStorage(stream=png, filename="photo.png")])
    attachments.store([item])
    attachments.record(cases.MESSAGE, message.id, [item])
    return item.key


def build_world():
    """Two companies; the first with sites A and B and a login per role."""
    acme = factories.customer(name="Acme")
    site_a = factories.site(acme, name="Site A")
    site_b = factories.site(acme, name="Site B")
    other = factories.customer(name="Other Co")
    invoice, _ = factories.invoice(acme, site=site_a, paid_cents=1000)
    invoice_site, _ = factories.invoice(acme, site=site_b, paid_cents=1000)
    invoice_other, _ = factories.invoice(other, paid_cents=1000)
    objects = {
        "invoice": invoice.id,
        "invoice_site": invoice_site.id,
        "invoice_other": invoice_other.id,
        "payment": _payment(acme, invoice, 1).id,
        "payment_site": _payment(acme, invoice_site, 2).id,
        "payment_other": _payment(other, invoice_other, 3).id,
        "colleague": factories.portal_user(acme, roles="invoices").id,
        "user_other": factories.portal_user(other).id,
        "case": Case.create(number="CS-M1", customer=acme, site=site_a, subject="A").id,
        "case_site": Case.create(number="CS-M2", customer=acme, site=site_b, subject="B").id,
        "case_other": Case.create(number="CS-M3", customer=other, subject="C").id,
        "quote": factories.quote(acme, site=site_a).id,
        "quote_site": factories.quote(acme, site=site_b).id,
        "quote_other": factories.quote(other).id,
        "rfq": factories.rfq(acme, site=site_a).id,
        "rfq_site": factories.rfq(acme, site=site_b).id,
        "rfq_other": factories.rfq(other).id,
        "order": factories.order(acme, site=site_a).id,
        "order_site": factories.order(acme, site=site_b).id,
        "order_other": factories.order(other).id,
        "product": factories.product().item_code,
        "product_withdrawn": factories.product(active=False).item_code,
    }
    for name in ("case", "case_site", "case_other"):
        objects[name.replace("case", "attachment")] = _attachment(objects[name])
    logins = {}
    for name in LOGINS:
        roles = factories.ALL_ROLES if name in ("all", "site") else name
        sites = [site_a] if name == "site" else None
        logins[name] = factories.portal_user(
            acme, email=f"{name}@acme.example", roles=roles, sites=sites
        )
    return objects, logins


def url_of(app, endpoint, variant, objects):
    """The URL for one variant, or None when the route has no object of that kind."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    args = {}
    for name in rule.arguments:
        key = URL_ARGS[name][VARIANTS.index(variant)]
        if key is None:
            return None
        args[name] = objects[key]
    if not args and variant != "own":
        return None
    with app.test_request_context():
        return url_for(endpoint, **args)


def expected(route: Route, user: PortalUser, variant: str):
    """The designed answer: a status, or the tuple of permitted statuses."""
    if route.role and not user.has_role(route.role):
        return 403
    if any(not user.has_role(role) for role in route.also):
        return 404
    if route.whole_account and user.site_ids is not None:
        return 404
    if variant == "other":
        return 404
    if variant == "site" and user.site_ids is not None:
        return 404
    return route.ok


def call(client, method, url, headers=None):
    return client.open(url, method=method, data={}, headers=headers or {})


def denied_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("access denied")]


def logged_once(caplog, before: int, who: str, got: int, endpoint: str) -> bool:
    """E7: a refused request (403/404) left exactly one line naming who, the answer and
    the route; any other answer left none."""
    new = denied_lines(caplog)[before:]
    if got not in (403, 404):
        return new == []
    return len(new) == 1 and new[0].startswith(f"access denied: {who} got {got} for {endpoint} ")


@pytest.mark.parametrize(("endpoint", "method"), sorted(MATRIX))
def test_matrix(app, endpoint, method, caplog):
    """E2 / E5: every login x every object variant, page and htmx fragment alike; E7: each
    refused request of a signed-in login is logged once."""
    route = MATRIX[(endpoint, method)]
    objects, logins = build_world()
    clients = {}
    for name, user in logins.items():
        clients[name] = app.test_client()
        assert login(clients[name], user.email).status_code == 303
    guest = app.test_client()
    staff = app.test_client()
    staff_user = factories.staff()
    staff_login(staff, staff_user.email)

    failures = []
    for variant in VARIANTS:
        url = url_of(app, endpoint, variant, objects)
        if url is None:
            continue
        for name, user in logins.items():
            user = PortalUser.get_by_id(user.id)
            want = expected(route, user, variant)
            # The htmx fragment of every denial, and of the allowed answer for one login
            # (the rest repeat the page's check and only cost time).
            permitted = isinstance(want, tuple)
            for headers in (None, HX) if not permitted or name == "all" else (None,):
                before = len(denied_lines(caplog))
                got = call(clients[name], method, url, headers).status_code
                if not logged_once(caplog, before, f"portal user {user.id}", got, endpoint):
                    failures.append((name, variant, "E7 log", denied_lines(caplog)[before:], got))
                ok = got in want if isinstance(want, tuple) else got == want
                if isinstance(want, tuple) and headers and got == 204:
                    ok = True  # htmx success may be 204 + HX-Redirect
                if not ok:
                    failures.append((name, variant, "htmx" if headers else "page", got, want))
        answer = call(guest, method, url)
        if answer.status_code != 302 or "/login" not in answer.headers["Location"]:
            failures.append(("guest", variant, "page", answer.status_code, 302))
        answer = call(guest, method, url, HX)
        if answer.status_code != 204 or "/login" not in answer.headers.get("HX-Redirect", ""):
            failures.append(("guest", variant, "htmx", answer.status_code, 204))
        before = len(denied_lines(caplog))
        got = call(staff, method, url).status_code
        if got != 403:
            failures.append(("staff", variant, "page", got, 403))
        if not logged_once(caplog, before, f"staff user {staff_user.id}", got, endpoint):
            failures.append(("staff", variant, "E7 log", denied_lines(caplog)[before:], got))
    assert failures == [], f"{endpoint} {method}: (login, object, kind, got, wanted) {failures}"


def test_navigation_shows_only_what_the_roles_allow(app):
    _, logins = build_world()
    labels = {
        "invoices": "Invoices",
        "statements": "Statements",
        "company_admin": "Company",
    }
    for name in PORTAL_ROLES:
        client = app.test_client()
        login(client, logins[name].email)
        html = client.get("/account/").get_data(as_text=True)
        nav = html.split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]
        for role, label in labels.items():
            assert (f">{label}</a>" in nav) == (role == name), (name, label)
        assert ">My account</a>" in nav


def test_a_failing_permission_check_fails_closed(app, monkeypatch):
    """E6: an exception inside the permission check denies: a generic 500, never the data."""
    objects, logins = build_world()
    client = app.test_client()
    assert login(client, logins["all"].email).status_code == 303
    invoice = Invoice.get_by_id(objects["invoice"])

    def broken(self, role):
        raise RuntimeError("role store unavailable")

    monkeypatch.setattr(PortalUser, "has_role", broken)
    for url in ("/invoices/", f"/invoices/{invoice.public_id}", "/"):
        response = client.get(url)
        assert response.status_code == 500, url
        page = response.get_data(as_text=True)
        assert invoice.number not in page and "role store unavailable" not in page
        assert "Something went wrong on our side" in page
