"""Catalog: products at each customer's own price, availability, search, withdrawn products."""

import pytest

from portal.models import CustomerPrice

from . import factories
from .conftest import HX, login


@pytest.fixture
def acme():
    return factories.customer(name="Acme Manufacturing")


@pytest.fixture
def buyer(acme):
    return factories.portal_user(acme, email="pat@acme.example", roles="orders")


def test_each_customer_sees_its_own_price_else_the_list_price(app, acme, buyer):
    """Acme's price list sets 8.50 for the bolt; another customer sees the 10.00 list price."""
    bolt = factories.product(item_code="BOLT-10", description="Hex bolt M10", price_cents=1000)
    nut = factories.product(item_code="NUT-10", description="Hex nut M10", price_cents=300)
    CustomerPrice.create(customer=acme, product=bolt, price_cents=850)
    other = factories.customer()
    factories.portal_user(other, email="kim@other.example", roles="orders")

    mine = app.test_client()
    login(mine, "pat@acme.example")
    page = mine.get("/catalog/").get_data(as_text=True)
    assert "$8.50" in page and "$10.00" not in page and "$3.00" in page
    assert "Your price" in page
    page = mine.get(f"/catalog/item/{bolt.item_code}").get_data(as_text=True)
    assert "$8.50" in page and "Hex bolt M10" in page

    theirs = app.test_client()
    login(theirs, "kim@other.example")
    page = theirs.get(f"/catalog/item/{bolt.item_code}").get_data(as_text=True)
    assert "$10.00" in page and "$8.50" not in page
    assert nut.item_code in theirs.get("/catalog/").get_data(as_text=True)


def test_search_by_code_or_words_and_htmx_answers_the_results(client, buyer):
    factories.product(item_code="BOLT-10", description="Hex bolt M10")
    factories.product(item_code="WASH-10", description="Flat washer M10")
    factories.product(item_code="GLUE-1", description="Thread locker")
    login(client, "pat@acme.example")
    page = client.get("/catalog/?q=m10+hex").get_data(as_text=True)
    assert "BOLT-10" in page and "WASH-10" not in page and "GLUE-1" not in page
    fragment = client.get("/catalog/?q=wash", headers=HX)
    html = fragment.get_data(as_text=True)
    assert "WASH-10" in html and "<html" not in html and "BOLT-10" not in html
    assert "HX-Request" in fragment.headers["Vary"]


def test_availability_is_shown_and_out_of_stock_cannot_be_added(client, buyer):
    stocked = factories.product(item_code="IN-1", available_quantity=7, unit="box")
    empty = factories.product(item_code="OUT-1", available_quantity=0)
    login(client, "pat@acme.example")
    page = client.get("/catalog/").get_data(as_text=True)
    assert "7 box available" in page and "Out of stock" in page
    assert "Add to cart" in client.get(f"/catalog/item/{stocked.item_code}").get_data(as_text=True)
    page = client.get(f"/catalog/item/{empty.item_code}").get_data(as_text=True)
    assert "Add to cart" not in page
    refused = client.post(f"/catalog/add/{empty.item_code}", data={"quantity": "1"})
    assert refused.status_code == 422 and "Out of stock" in refused.get_data(as_text=True)


def test_a_withdrawn_product_is_not_listed_and_its_page_is_404(client, buyer):
    gone = factories.product(item_code="OLD-1", active=False)
    login(client, "pat@acme.example")
    assert "OLD-1" not in client.get("/catalog/").get_data(as_text=True)
    assert client.get(f"/catalog/item/{gone.item_code}").status_code == 404
    assert client.post(f"/catalog/add/{gone.item_code}", data={"quantity": "1"}).status_code == 404


def test_the_catalog_needs_the_orders_role(client, acme):
    """E1: without the orders role the catalog is refused and not in the navigation."""
    factories.portal_user(acme, email="ivy@acme.example", roles="invoices")
    login(client, "ivy@acme.example")
    assert client.get("/catalog/").status_code == 403
    assert ">Catalog</a>" not in client.get("/account/").get_data(as_text=True)


def test_a_product_page_is_named_by_its_item_code_not_its_row_id(client, buyer):
    """E3: the catalog's URLs carry the item code (a slash in it included), never the id."""
    odd = factories.product(item_code="PIPE/20-A", description="Pipe 20", available_quantity=3)
    login(client, "pat@acme.example")
    listing = client.get("/catalog/").get_data(as_text=True)
    assert "/catalog/item/PIPE/20-A" in listing and f"/catalog/{odd.id}" not in listing
    assert "Pipe 20" in client.get("/catalog/item/PIPE/20-A").get_data(as_text=True)
    assert client.post("/catalog/add/PIPE/20-A", data={"quantity": "2"}).status_code == 303
    assert client.get(f"/catalog/item/{odd.id}").status_code == 404
