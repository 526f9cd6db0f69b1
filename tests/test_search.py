"""One search over the account (issue 19): invoices, quotes, orders and cases of the signed-in
login, grouped by kind, scoped exactly as each list is (company, sites, roles, modules)."""

import re

import pytest
from playhouse.test_utils import count_queries

from portal.models import Case, InvoiceLine
from portal.services import settings

from . import factories
from .conftest import login


def _found(html: str) -> dict[str, list[str]]:
    """{group heading: [link texts]} of the results."""
    groups = {}
    for heading, body in re.findall(r'<h2 id="found-\w+">([^<]+)</h2>(.*?)</section>', html, re.S):
        groups[heading] = re.findall(r'<li>\s*<a href="[^"]+">([^<]+)</a>', body)
    return groups


@pytest.fixture
def world(app):
    acme = factories.customer(name="Acme Manufacturing")
    north, south = factories.site(acme), factories.site(acme)
    pump, _ = factories.invoice(acme, site=north, number="INV-PUMP", description="Pump overhaul")
    factories.invoice(acme, site=south, number="INV-SOUTH", description="Pump south")
    lined, _ = factories.invoice(acme, site=north, number="INV-LINES")
    InvoiceLine.create(invoice=lined, description="Spare pump seals")
    factories.invoice(acme, site=north, number="INV-OTHER", description="Freight")
    factories.quote(acme, site=north, number="Q-PUMP", lines=[(None, "Pump housing", 1000, 5000)])
    factories.quote(acme, site=north, number="Q-DRAFT-PUMP", status="draft")
    factories.order(acme, site=north, number="SO-1", customer_po="PO-PUMP-1")
    factories.order(acme, site=south, number="SO-2", lines=[("Pump impeller", 1000, 0, 900)])
    Case.create(number="CASE-000001", customer=acme, site=north, subject="Pump is leaking")
    Case.create(number="CASE-000002", customer=acme, subject="Invoice copy")
    # Another company with the same words everywhere: never found.
    other = factories.customer(name="Globex")
    factories.invoice(other, number="INV-GLOBEX", description="Pump overhaul")
    factories.quote(other, number="Q-GLOBEX", lines=[(None, "Pump", 1000, 100)])
    factories.order(other, number="SO-GLOBEX", customer_po="PO-PUMP-1")
    Case.create(number="CASE-000003", customer=other, subject="Pump")
    return {"acme": acme, "north": north, "pump": pump}


def _search(client, email, q="pump", **headers):
    login(client, email)
    response = client.get("/search/", query_string={"q": q}, headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_finds_each_kind_of_the_account_and_nothing_of_another_company(world, client):
    factories.portal_user(world["acme"], email="all@acme.example")
    found = _found(_search(client, "all@acme.example"))
    assert sorted(found) == ["Invoices", "Orders", "Quotes", "Support cases"]
    assert sorted(found["Invoices"]) == [
        "Invoice INV-LINES",  # a line's description
        "Invoice INV-PUMP",
        "Invoice INV-SOUTH",
    ]
    assert found["Quotes"] == ["Quote Q-PUMP"]  # a draft is not shown, as on the Quotes list
    assert sorted(found["Orders"]) == ["Order SO-1", "Order SO-2"]  # by PO, by line
    assert found["Support cases"] == ["CASE-000001"]
    html = _search(client, "all@acme.example")
    assert "GLOBEX" not in html and "CASE-000003" not in html
    assert f'href="/invoices/{world["pump"].public_id}"' in html


def test_a_site_scoped_login_finds_only_its_sites(world, client):
    factories.portal_user(world["acme"], email="north@acme.example", sites=[world["north"]])
    found = _found(_search(client, "north@acme.example"))
    assert sorted(found["Invoices"]) == ["Invoice INV-LINES", "Invoice INV-PUMP"]
    assert found["Orders"] == ["Order SO-1"]
    assert found["Quotes"] == ["Quote Q-PUMP"]
    assert found["Support cases"] == ["CASE-000001"]


@pytest.mark.parametrize(
    "roles, kinds",
    [
        ("invoices", ["Invoices"]),
        ("quotes,cases", ["Quotes", "Support cases"]),
        ("orders", ["Orders"]),
        ("statements,company_admin", []),
    ],
)
def test_roles_decide_which_kinds_are_searched(world, client, roles, kinds):
    factories.portal_user(world["acme"], email="some@acme.example", roles=roles)
    html = _search(client, "some@acme.example")
    assert list(_found(html)) == kinds
    if not kinds:
        assert "Nothing matches “pump”" in html


def test_a_module_switched_off_is_not_searched(world, client):
    settings.save({"module_quotes": False})
    factories.portal_user(world["acme"], email="all@acme.example")
    assert "Quotes" not in _found(_search(client, "all@acme.example"))


def test_plain_page_and_htmx_fragment(world, client, hx):
    factories.portal_user(world["acme"], email="all@acme.example")
    page = _search(client, "all@acme.example", q="CASE-000001")
    assert "<html" in page and 'action="/search/"' in page and 'name="q"' in page
    assert _found(page) == {"Support cases": ["CASE-000001"]}
    response = client.get("/search/?q=CASE-000001", headers=hx)
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and 'id="search-results"' in fragment
    assert "HX-Request" in response.headers["Vary"]
    empty = client.get("/search/").get_data(as_text=True)
    assert 'id="search-results"' in empty and "<h2" not in empty


def test_the_menu_carries_the_search_box(world, client):
    factories.portal_user(world["acme"], email="all@acme.example")
    login(client, "all@acme.example")
    html = client.get("/invoices/").get_data(as_text=True)
    assert re.search(r'<form method="get" action="/search/" role="search"', html)


def test_many_matches_show_the_newest_and_link_to_the_list(world, client, monkeypatch):
    from portal.services import search

    monkeypatch.setattr(search, "LIMIT", 2)
    factories.portal_user(world["acme"], email="all@acme.example")
    html = _search(client, "all@acme.example", q="INV-")
    assert len(_found(html)["Invoices"]) == 2
    assert "/invoices/?status=all&amp;q=INV-" in html


def test_the_search_costs_one_query_per_kind_whatever_it_finds(world, client, app):
    factories.portal_user(world["acme"], email="all@acme.example")
    login(client, "all@acme.example")
    client.get("/search/?q=pump")
    with count_queries() as few:
        client.get("/search/?q=zzz")
    with count_queries() as many:
        client.get("/search/?q=pump")
    assert many.count == few.count
