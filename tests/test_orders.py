"""Orders: customers follow their orders and shipments (read-only), scoped to company and sites."""

from datetime import date, timedelta

import pytest
from playhouse.test_utils import count_queries

from . import factories
from .conftest import HX, login


@pytest.fixture
def acme():
    return factories.customer(name="Acme Manufacturing")


@pytest.fixture
def buyer(acme):
    return factories.portal_user(acme, email="pat@acme.example")


def test_list_filters_open_shipped_and_all(client, acme, buyer):
    """Open (incl. partly shipped) by default; shipped (incl. completed); all adds cancelled."""
    open_ = factories.order(acme, status="open")
    partly = factories.order(acme, status="partially_shipped")
    shipped = factories.order(acme, status="shipped")
    closed = factories.order(acme, status="closed")
    cancelled = factories.order(acme, status="cancelled")
    login(client, "pat@acme.example")
    page = client.get("/orders/").get_data(as_text=True)
    assert open_.number in page and partly.number in page
    assert shipped.number not in page and cancelled.number not in page
    assert "Partly shipped" in page
    page = client.get("/orders/?status=shipped").get_data(as_text=True)
    assert shipped.number in page and closed.number in page and open_.number not in page
    page = client.get("/orders/?status=all").get_data(as_text=True)
    for order in (open_, partly, shipped, closed, cancelled):
        assert order.number in page
    assert client.get("/orders/?status=bogus").status_code == 200


def test_search_by_number_or_customer_po(client, acme, buyer):
    """The search matches the order number or the customer's PO, on the open filter or all."""
    mine = factories.order(acme, customer_po="PO-AC-7781")
    other = factories.order(acme, customer_po="PO-ZZ-1")
    login(client, "pat@acme.example")
    page = client.get("/orders/?q=ac-77").get_data(as_text=True)
    assert mine.number in page and other.number not in page
    page = client.get(f"/orders/?status=all&q={other.number}").get_data(as_text=True)
    assert other.number in page and mine.number not in page
    assert "No order matches" in client.get("/orders/?q=nothing-like-it").get_data(as_text=True)


def test_htmx_search_answers_only_the_results(client, acme, buyer):
    """STYLE 9: an htmx request gets the results fragment, a plain one the page."""
    factories.order(acme, customer_po="PO-1")
    login(client, "pat@acme.example")
    fragment = client.get("/orders/?q=PO-1", headers=HX)
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="order-results">') and "<html" not in body
    assert "HX-Request" in fragment.headers["Vary"]


def test_order_page_shows_lines_shipments_promised_date_and_quote(client, acme, buyer):
    """Ordered and shipped quantities, carrier and tracking (linked for known carriers), the
    promised date, and a link to the quote it came from."""
    quote = factories.quote(acme, status="accepted")
    order = factories.order(
        acme,
        status="partially_shipped",
        quote=quote,
        promised_date=date(2099, 3, 15),
        customer_po="PO-AC-7781",
        lines=[("Bracket", 400_000, 400_000, 1250), ("Hex bolt", 30_000, 10_000, 1950)],
        shipments=[("UPS", "1Z999AA10123456784"), ("Local courier", "LC-77")],
    )
    login(client, "pat@acme.example")
    page = client.get(f"/orders/{order.public_id}").get_data(as_text=True)
    assert "Bracket" in page and "Hex bolt" in page
    assert ">30<" in page and "10</td>" in page  # ordered and shipped
    assert "Mar 15, 2099" in page and "PO-AC-7781" in page
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in page
    assert "Local courier" in page and "LC-77" in page
    assert f'href="/quotes/{quote.public_id}"' in page
    shipped_value = 400 * 1250 + 10 * 1950
    assert f"{shipped_value * 100 // (400 * 1250 + 30 * 1950)}%" in page  # by value: 93%


def test_quote_link_only_when_the_user_may_see_the_quote(client, acme):
    """No link to the quote for a login without the quotes role (its page would be 403)."""
    quote = factories.quote(acme, status="accepted")
    order = factories.order(acme, quote=quote)
    factories.portal_user(acme, email="shipping@acme.example", roles="orders")
    login(client, "shipping@acme.example")
    page = client.get(f"/orders/{order.public_id}").get_data(as_text=True)
    assert order.number in page and f"/quotes/{quote.public_id}" not in page


def test_other_company_and_out_of_scope_site_answer_404(client, acme, buyer):
    """E2: another company's order, or one of a site outside the login's scope, is 404 and
    never listed or found by search; a login without `orders` gets 403."""
    theirs = factories.order(factories.customer(), customer_po="PO-SECRET")
    plant1, plant2 = factories.site(acme, name="Plant 1"), factories.site(acme, name="Plant 2")
    plant2_order = factories.order(acme, site=plant2, customer_po="PO-P2")
    factories.portal_user(acme, email="p1@acme.example", sites=[plant1])
    factories.portal_user(acme, email="billing@acme.example", roles="invoices")

    login(client, "pat@acme.example")
    assert client.get(f"/orders/{theirs.public_id}").status_code == 404
    assert client.get(f"/orders/{plant2_order.public_id}").status_code == 200
    assert theirs.number not in client.get("/orders/?status=all&q=PO-SECRET").get_data(as_text=True)

    client.post("/logout")
    login(client, "p1@acme.example")
    assert client.get(f"/orders/{plant2_order.public_id}").status_code == 404
    assert plant2_order.number not in client.get("/orders/?status=all").get_data(as_text=True)

    client.post("/logout")
    login(client, "billing@acme.example")
    assert client.get("/orders/").status_code == 403
    assert client.get(f"/orders/{plant2_order.public_id}").status_code == 403


def test_orders_are_read_only(client, acme, buyer):
    """There is no way to change an order from the portal: POST is not allowed."""
    order = factories.order(acme)
    login(client, "pat@acme.example")
    assert client.post(f"/orders/{order.public_id}").status_code == 405
    assert client.post("/orders/").status_code == 405


def test_list_query_count_does_not_grow_with_rows(client, acme, buyer):
    """The order list runs a fixed number of queries, however many orders there are."""
    login(client, "pat@acme.example")
    factories.order(acme)
    with count_queries() as few:
        client.get("/orders/")
    for n in range(8):
        factories.order(acme, promised_date=date.today() + timedelta(days=n))
    with count_queries() as many:
        client.get("/orders/")
    assert few.count > 0 and many.count == few.count


@pytest.mark.parametrize("module, url", [("orders", "/orders/"), ("quotes", "/quotes/")])
def test_switched_off_module_is_404_and_leaves_the_menu(client, buyer, module, url):
    """A module turned off in the settings answers 404 and its menu entry disappears."""
    from portal.services import settings

    login(client, "pat@acme.example")
    label = module.capitalize()
    assert f">{label}</a>" in client.get("/account/").get_data(as_text=True)
    settings.save({f"module_{module}": False})
    assert client.get(url).status_code == 404
    assert f">{label}</a>" not in client.get("/account/").get_data(as_text=True)
