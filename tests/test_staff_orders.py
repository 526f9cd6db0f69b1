"""Orders in the back office: every customer's orders, read-only, as the ERP sent them."""

from portal.models import Shipment

from . import factories
from .conftest import HX, login, staff_login


def test_staff_find_any_customers_order_and_read_it(client):
    """Open orders by default; search by number, PO, customer or account; the order page
    shows its customer, the quote it came from, lines, shipments and progress."""
    acme = factories.customer(account_number="ACME01", name="Acme Manufacturing")
    birch = factories.customer(account_number="BIRCH", name="Birchwood Dental")
    quote = factories.quote(acme, status="accepted")
    order = factories.order(
        acme,
        number="SO-100",
        customer_po="PO-77",
        quote=quote,
        status="partially_shipped",
        lines=[("Bracket", 400_000, 150_000, 1250)],
        shipments=[("UPS", "1Z999")],
    )
    factories.order(birch, number="SO-200", status="shipped")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")

    html = client.get("/staff/orders/").get_data(as_text=True)
    assert "SO-100" in html and "SO-200" not in html  # shipped is not open
    everything = client.get("/staff/orders/?status=all").get_data(as_text=True)
    assert "SO-100" in everything and "SO-200" in everything
    for q in ("po-77", "acme", "BIRCH", "so-2"):
        found = client.get(f"/staff/orders/?status=all&q={q}", headers=HX).get_data(as_text=True)
        assert found.lstrip().startswith('<div id="results">'), q
        assert ("SO-100" in found) == (q in ("po-77", "acme")), q

    page = client.get(f"/staff/orders/{order.id}").get_data(as_text=True)
    assert "Acme Manufacturing" in page and quote.number in page and "Bracket" in page
    assert "1Z999" in page and Shipment.get().number in page and "Partly shipped" in page
    quote_page = client.get(f"/staff/quotes/{quote.id}").get_data(as_text=True)
    assert f'href="/staff/orders/{order.id}"' in quote_page
    assert client.get("/staff/orders/999999").status_code == 404


def test_orders_are_staff_only(client):
    """E5: customers and guests never reach the back office's orders, htmx included."""
    buyer = factories.portal_user(email="pat@acme.example")
    order = factories.order(buyer.contact.customer)
    assert client.get("/staff/orders/").headers["Location"].startswith("/staff/login")
    login(client, "pat@acme.example")
    for url in ("/staff/orders/", f"/staff/orders/{order.id}"):
        assert client.get(url).status_code in (302, 403)
    assert client.get("/staff/orders/", headers=HX).status_code in (204, 403)
