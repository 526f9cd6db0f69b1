"""Cart and checkout: server totals as quantities are typed, availability limits, a product
withdrawn while in the cart, ship-to within the login's sites, one order per cart."""

import threading
from datetime import date, timedelta

import pytest

from portal.db import db
from portal.models import Cart, CartLine, CustomerPrice, Product, SalesOrder, WebOrder
from portal.services import cart

from . import factories
from .conftest import HX, login


@pytest.fixture
def acme():
    return factories.customer(name="Acme Manufacturing")


@pytest.fixture
def site_a(acme):
    return factories.site(acme, name="Plant A", site_code="A")


@pytest.fixture
def site_b(acme):
    return factories.site(acme, name="Plant B", site_code="B")


@pytest.fixture
def buyer(acme, site_a, site_b):
    """A buyer limited to Plant A."""
    return factories.portal_user(acme, email="pat@acme.example", roles="orders", sites=[site_a])


@pytest.fixture
def bolt(acme):
    made = factories.product(item_code="BOLT-10", price_cents=1000, available_quantity=50)
    CustomerPrice.create(customer=acme, product=made, price_cents=850)
    return made


@pytest.fixture
def nut():
    return factories.product(item_code="NUT-10", price_cents=300, available_quantity=5)


def _lines(user):
    return {i.product.item_code: i.quantity_milli for i in cart.view(user).items}


def test_add_change_and_remove_with_totals_from_the_server(client, buyer, bolt, nut):
    login(client, "pat@acme.example")
    assert client.post(f"/catalog/add/{bolt.item_code}", data={"quantity": "2"}).status_code == 303
    assert client.post(f"/catalog/add/{bolt.item_code}", data={"quantity": "1"}).status_code == 303
    assert client.post(f"/catalog/add/{nut.item_code}", data={"quantity": "4"}).status_code == 303
    assert _lines(buyer) == {"BOLT-10": 3000, "NUT-10": 4000}
    page = client.get("/cart/").get_data(as_text=True)
    assert "$25.50" in page and "$12.00" in page and "$37.50" in page  # 3 x 8.50 + 4 x 3.00
    # As you type (htmx): the cart comes back recomputed, a fragment.
    typed = client.post("/cart/update", data={f"qty-{bolt.id}": "10"}, headers=HX)
    html = typed.get_data(as_text=True)
    assert typed.status_code == 200 and "<html" not in html
    assert "$85.00" in html and "$97.00" in html
    # Without JavaScript the same form posts and comes back to the cart (303).
    assert client.post("/cart/update", data={f"qty-{nut.id}": "0"}).status_code == 303
    assert _lines(buyer) == {"BOLT-10": 10000}
    assert client.post("/cart/remove", data={"product": bolt.id}).status_code == 303
    assert _lines(buyer) == {}


def test_quantities_over_what_is_available_are_refused(client, buyer, nut):
    login(client, "pat@acme.example")
    refused = client.post(f"/catalog/add/{nut.item_code}", data={"quantity": "6"})
    assert refused.status_code == 422 and "Only 5 ea available" in refused.get_data(as_text=True)
    assert client.post(f"/catalog/add/{nut.item_code}", data={"quantity": "abc"}).status_code == 422
    assert client.post(f"/catalog/add/{nut.item_code}", data={"quantity": "5"}).status_code == 303
    typed = client.post("/cart/update", data={f"qty-{nut.id}": "9"}, headers=HX)
    html = typed.get_data(as_text=True)
    assert typed.status_code == 422 and "Only 5 ea available" in html
    assert 'value="9"' in html  # what was typed stays in the box
    assert _lines(buyer) == {"NUT-10": 5000}
    bad = client.post("/cart/update", data={f"qty-{nut.id}": "-1"}, headers=HX)
    assert bad.status_code == 422 and _lines(buyer) == {"NUT-10": 5000}


def test_a_product_withdrawn_or_short_while_in_the_cart_blocks_checkout(
    client, buyer, bolt, nut, site_a
):
    login(client, "pat@acme.example")
    client.post(f"/catalog/add/{bolt.item_code}", data={"quantity": "2"})
    client.post(f"/catalog/add/{nut.item_code}", data={"quantity": "5"})
    Product.update(active=False).where(Product.id == bolt.id).execute()
    Product.update(available_quantity=3).where(Product.id == nut.id).execute()
    page = client.get("/cart/").get_data(as_text=True)
    assert "No longer sold" in page and "Only 3 ea available" in page
    placed = client.post("/cart/checkout", data={"site_id": site_a.id})
    assert placed.status_code == 422
    assert SalesOrder.select().count() == 0
    # Removing the withdrawn line and lowering the other lets the order through.
    client.post("/cart/remove", data={"product": bolt.id})
    client.post("/cart/update", data={f"qty-{nut.id}": "3"})
    assert client.post("/cart/checkout", data={"site_id": site_a.id}).status_code == 303
    assert SalesOrder.select().count() == 1


def test_checkout_places_a_submitted_order_for_an_allowed_site_and_alerts_the_office(
    client, mailbox, buyer, bolt, site_a, site_b
):
    """E2 / E4 (STYLE 6): another site of the company is not offered, and a tampered one is
    refused; the office gets the order by email."""
    login(client, "pat@acme.example")
    client.post(f"/catalog/add/{bolt.item_code}", data={"quantity": "4"})
    page = client.get("/cart/").get_data(as_text=True)
    assert "Plant A" in page and "Plant B" not in page
    tampered = client.post("/cart/checkout", data={"site_id": site_b.id, "customer_po": "PO-1"})
    assert tampered.status_code == 422 and "Choose one of your sites" in tampered.text
    assert SalesOrder.select().count() == 0
    past = client.post(
        "/cart/checkout",
        data={
            "site_id": site_a.id,
            "requested_date": (date.today() - timedelta(days=9)).isoformat(),
        },
    )
    assert past.status_code == 422
    mailbox.clear()
    wanted = (date.today() + timedelta(days=10)).isoformat()
    placed = client.post(
        "/cart/checkout",
        data={
            "site_id": site_a.id,
            "customer_po": " PO-77 ",
            "requested_date": wanted,
            "notes": "Dock 3",
        },
    )
    assert placed.status_code == 303
    order = SalesOrder.get()
    web = WebOrder.get(WebOrder.order == order.id)
    assert order.status == "submitted" and order.site_id == site_a.id
    assert order.customer_po == "PO-77" and order.total_cents == 3400
    assert web.number == order.number and web.requested_date.isoformat() == wanted
    assert web.notes == "Dock 3" and web.placed_by_id == buyer.id
    assert _lines(buyer) == {}
    shown = client.get(placed.headers["Location"]).get_data(as_text=True)
    assert "Submitted" in shown and "Dock 3" in shown
    assert order.number in client.get("/orders/").get_data(as_text=True)
    office = mailbox.wait_for(1)[0]
    assert office["To"] == "billing@example.com" and order.number in office["Subject"]
    assert "BOLT-10" in office.get_content() and "PO-77" in office.get_content()
    # The cart is empty now: posting again (a double click) lands on the order made.
    again = client.post("/cart/checkout", data={"site_id": site_a.id})
    assert again.status_code == 303 and again.headers["Location"].endswith(
        placed.headers["Location"]
    )
    assert SalesOrder.select().count() == 1


def test_concurrent_checkouts_of_one_cart_make_one_order(app, buyer, bolt, site_a):
    """Eight checkouts of the same cart released at once: one order, seven told it is empty."""
    cart.add(buyer, bolt.id, 2000)
    count = 8
    barrier = threading.Barrier(count)
    results = [None] * count

    def worker(i):
        with app.app_context():
            db.connect(reuse_if_open=True)
            try:
                from portal.models import PortalUser

                user = PortalUser.get_by_id(buyer.id)
                barrier.wait(timeout=30)
                results[i] = cart.checkout(user, site_id=site_a.id).id
            except cart.CartError as exc:
                results[i] = exc
            finally:
                db.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    made = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, cart.CartError)]
    assert len(made) == 1 and len(refused) == count - 1, results
    assert all(r.order is not None and r.order.id == made[0] for r in refused)
    assert SalesOrder.select().count() == 1 and WebOrder.select().count() == 1
    assert CartLine.select().count() == 0
    assert Cart.get(Cart.portal_user == buyer.id).last_order_id == made[0]
