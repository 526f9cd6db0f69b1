"""Portal orders in the back office: accept or reject with a reason, the CSV export for the
ERP (each order exported once, even when two exports run at once), and reorder."""

import csv
import io
import threading

import pytest

from portal.db import db
from portal.models import CustomerPrice, Product, SalesOrder, StaffUser, WebOrder
from portal.services import cart, orders

from . import factories
from .conftest import login, staff_login


@pytest.fixture
def acme():
    return factories.customer(name="Acme Manufacturing", account_number="ACME")


@pytest.fixture
def site_a(acme):
    return factories.site(acme, name="Plant A", site_code="A")


@pytest.fixture
def buyer(acme, site_a):
    return factories.portal_user(acme, email="pat@acme.example", roles="orders", sites=[site_a])


@pytest.fixture
def bolt():
    return factories.product(item_code="BOLT-10", price_cents=1000, available_quantity=50)


def place(user, product, milli, site, po=""):
    cart.add(user, product.id, milli)
    return cart.checkout(user, site_id=site.id, customer_po=po)


def test_staff_accept_or_reject_with_a_reason_the_customer_reads(app, client, buyer, bolt, site_a):
    first = place(buyer, bolt, 2000, site_a)
    second = place(buyer, bolt, 1000, site_a)
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    listed = client.get("/staff/orders/?status=submitted").get_data(as_text=True)
    assert first.number in listed and second.number in listed
    page = client.get(f"/staff/orders/{first.id}").get_data(as_text=True)
    assert "Accept order" in page and "Reject order" in page
    ok = client.post(f"/staff/orders/{first.id}/review", data={"decision": "accept"})
    assert ok.status_code == 303
    assert SalesOrder.get_by_id(first.id).status == "accepted"
    # Twice is refused: the order was already reviewed.
    client.post(f"/staff/orders/{first.id}/review", data={"decision": "reject", "reason": "x"})
    assert SalesOrder.get_by_id(first.id).status == "accepted"
    # A rejection needs a reason.
    blank = client.post(f"/staff/orders/{second.id}/review", data={"decision": "reject"})
    assert blank.status_code == 422 and SalesOrder.get_by_id(second.id).status == "submitted"
    client.post(
        f"/staff/orders/{second.id}/review",
        data={"decision": "reject", "reason": "Discontinued size; call us."},
    )
    assert SalesOrder.get_by_id(second.id).status == "rejected"
    customer = app.test_client()
    login(customer, "pat@acme.example")
    page = customer.get(f"/orders/{second.public_id}").get_data(as_text=True)
    assert "Not accepted" in page and "Discontinued size; call us." in page
    page = customer.get(f"/orders/{first.public_id}").get_data(as_text=True)
    assert "We accepted your order" in page


def test_the_export_holds_accepted_orders_once(client, buyer, bolt, site_a):
    """Accepted orders only, each once; G6: a PO typed like a formula is neutralised."""
    accepted = place(buyer, bolt, 3000, site_a, po="=HYPERLINK(1)")
    waiting = place(buyer, bolt, 1000, site_a)
    sam = factories.staff(email="sam@example.com")
    orders.review(accepted, sam, True)
    staff_login(client, "sam@example.com")
    got = client.post("/staff/orders/export")
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.get_data(as_text=True))))
    assert [r["portal_order"] for r in rows] == [accepted.number]
    assert rows[0]["account_number"] == "ACME" and rows[0]["site_code"] == "A"
    assert rows[0]["item_code"] == "BOLT-10" and rows[0]["quantity"] == "3"
    assert rows[0]["unit_price"] == "10.00" and rows[0]["customer_po"] == "'=HYPERLINK(1)"
    assert rows[0]["placed_by"] == "pat@acme.example"
    assert WebOrder.get(WebOrder.order == accepted.id).exported_at is not None
    # Nothing new: no file, a notice.
    again = client.post("/staff/orders/export")
    assert again.status_code == 303
    assert WebOrder.get(WebOrder.order == waiting.id).exported_at is None


def test_two_exports_at_once_never_export_an_order_twice(app, buyer, bolt, site_a):
    made = [place(buyer, bolt, 1000, site_a) for _ in range(5)]
    sam = factories.staff(email="sam@example.com")
    for order in made:
        orders.review(order, sam, True)
    count = 4
    barrier = threading.Barrier(count)
    results = [None] * count

    def worker(i):
        with app.app_context():
            db.connect(reuse_if_open=True)
            try:
                staff = StaffUser.get_by_id(sam.id)
                barrier.wait(timeout=30)
                results[i] = orders.export_accepted(staff)
            finally:
                db.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    exported = []
    for result in results:
        if result is not None:
            exported += [r["portal_order"] for r in csv.DictReader(io.StringIO(result[1]))]
    assert sorted(exported) == sorted(o.number for o in made)
    assert WebOrder.select().where(WebOrder.exported_at.is_null()).count() == 0


def test_reorder_fills_the_cart_at_todays_prices_and_flags_what_changed(
    client, acme, buyer, bolt, site_a
):
    nut = factories.product(item_code="NUT-10", price_cents=300, available_quantity=50)
    old = factories.product(item_code="OLD-1", price_cents=100, available_quantity=50)
    past = factories.order(acme, site=site_a, lines=[("x", 1000, 0, 100)])
    from portal.models import SalesOrderLine

    SalesOrderLine.delete().where(SalesOrderLine.order == past.id).execute()
    for position, (product, milli, price) in enumerate(
        [(bolt, 4000, 1000), (nut, 2000, 300), (old, 1000, 100)], start=1
    ):
        SalesOrderLine.create(
            order=past,
            position=position,
            product=product,
            description=product.description,
            quantity_milli=milli,
            unit_price_cents=price,
            amount_cents=milli * price // 1000,
        )
    SalesOrderLine.create(order=past, position=9, description="Custom bracket", quantity_milli=1000)
    CustomerPrice.create(customer=acme, product=bolt, price_cents=1100)  # dearer today
    Product.update(active=False).where(Product.id == old.id).execute()
    login(client, "pat@acme.example")
    answer = client.post(f"/orders/{past.public_id}/reorder")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/cart/")
    page = client.get("/cart/").get_data(as_text=True)
    assert "BOLT-10" in page and "NUT-10" in page
    assert "Price changed: was $10.00, now $11.00" in page
    assert page.count("Price changed") == 1
    assert "OLD-1 is no longer sold" in page and "Custom bracket" in page
    assert {i.product.item_code: i.quantity_milli for i in cart.view(buyer).items} == {
        "BOLT-10": 4000,
        "NUT-10": 2000,
    }
    # Another site's order cannot be reordered (404).
    other_site = factories.order(acme, site=factories.site(acme))
    assert client.post(f"/orders/{other_site.public_id}/reorder").status_code == 404


def test_packing_slips_from_the_shipments_import_are_on_the_order(client, acme, buyer, site_a):
    """One printable slip per imported shipment, linked from the order; another site's
    order's slips are 404 (E2)."""
    order = factories.order(
        acme,
        site=site_a,
        customer_po="PO-31",
        lines=[("Hex bolt", 10000, 4000, 100)],
        shipments=[("UPS", "1Z999AA10123456784"), ("FedEx", "7712")],
    )
    numbers = [s.number for s in order.shipments]
    login(client, "pat@acme.example")
    page = client.get(f"/orders/{order.public_id}").get_data(as_text=True)
    assert f"/orders/{order.public_id}/packing-slips#slip-{numbers[0]}" in page
    slips = client.get(f"/orders/{order.public_id}/packing-slips").get_data(as_text=True)
    assert slips.count("Packing slip</h1>") == 2
    assert all(n in slips for n in numbers) and "Plant A" in slips and "PO-31" in slips
    assert "1Z999AA10123456784" in slips and ">4<" in slips
    other = factories.order(acme, site=factories.site(acme), shipments=[("UPS", "1")])
    assert client.get(f"/orders/{other.public_id}/packing-slips").status_code == 404
    sam = factories.staff(email="sam@example.com")
    staff_client = client.application.test_client()
    staff_login(staff_client, sam.email)
    staff_page = staff_client.get(f"/staff/orders/{order.id}/packing-slips")
    assert staff_page.status_code == 200 and numbers[1] in staff_page.get_data(as_text=True)
