"""Invoice search (issue 19): the customer's list finds an invoice by number, description,
PO or a line's description, inside the account and its sites, through the customer index;
the staff search finds by description and PO too."""

import io
import re
from datetime import date, timedelta

import pytest
from playhouse.test_utils import assert_query_count, count_queries

from portal.db import is_sqlite
from portal.models import Invoice, InvoiceLine
from portal.services import backoffice, billing, importer

from . import factories
from .conftest import login, query_plan, search_plan

TODAY = date.today()


def _numbers(html: str) -> list[str]:
    return re.findall(r'class="inv-link">([^<]+)<', html)


@pytest.fixture
def acme(app, client):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example")
    pump, _ = factories.invoice(customer, number="INV-2001", description="Pump overhaul parts")
    po, _ = factories.invoice(customer, number="INV-2002", customer_po="PO-AC-7781")
    lines, _ = factories.invoice(customer, number="INV-2003", description="Service visit")
    InvoiceLine.create(invoice=lines, description="Gasket set, Viton", amount_cents=100_000)
    factories.invoice(customer, number="INV-2004", description="Freight")
    # Another company's invoice reads the same words: never found.
    other = factories.customer(name="Globex Supply")
    factories.invoice(
        other, number="INV-9001", description="Pump overhaul parts", customer_po="PO-AC-7781"
    )
    login(client, user.email)
    return customer


@pytest.mark.parametrize(
    "q, expected",
    [
        ("pump", ["INV-2001"]),
        ("OVERHAUL", ["INV-2001"]),  # any case
        ("po-ac-7781", ["INV-2002"]),  # the customer's PO
        ("7781", ["INV-2002"]),
        ("gasket", ["INV-2003"]),  # a line's description
        ("inv-200", ["INV-2001", "INV-2002", "INV-2003", "INV-2004"]),  # the number, still
        ("nothing like it", []),
        ("50%", []),  # a wildcard is a character, not a pattern
    ],
)
def test_the_list_finds_by_number_description_po_and_lines(acme, client, q, expected):
    html = client.get("/invoices/", query_string={"status": "all", "q": q}).get_data(as_text=True)
    assert sorted(_numbers(html)) == expected


def test_the_found_invoice_shows_its_po_and_the_box_says_what_it_searches(acme, client):
    html = client.get("/invoices/?status=all&q=7781").get_data(as_text=True)
    assert "PO PO-AC-7781" in html
    assert "Search by number, description or PO" in html
    assert 'placeholder="e.g. INV-1042, pump, PO-7781"' in html
    empty = client.get("/invoices/?status=all&q=zzz").get_data(as_text=True)
    assert "No invoice matches “zzz”" in empty


def test_a_site_scoped_login_finds_only_its_sites(app, client):
    customer = factories.customer()
    north, south = factories.site(customer), factories.site(customer)
    user = factories.portal_user(customer, email="north@example.com", sites=[north])
    factories.invoice(customer, number="INV-N", site=north, description="Pump north")
    factories.invoice(customer, number="INV-S", site=south, description="Pump south")
    login(client, user.email)
    html = client.get("/invoices/?status=all&q=pump").get_data(as_text=True)
    assert _numbers(html) == ["INV-N"]


def test_a_search_costs_the_same_queries_however_many_invoices_others_have(acme, app, client):
    url = "/invoices/?status=all&q=pump"
    client.get(url)
    with count_queries() as counter:
        client.get(url)
    other = factories.customer()
    for i in range(30):
        made, _ = factories.invoice(other, number=f"X-{i}", description="Pump")
        InvoiceLine.create(invoice=made, description="Pump")
    app.extensions.pop("billing_aggregates", None)
    client.get(url)
    with assert_query_count(counter.count):
        html = client.get(url).get_data(as_text=True)
    assert _numbers(html) == ["INV-2001"]


def test_the_search_reads_the_account_through_the_customer_index(acme, app):
    """The plan starts from the account's index entries (never a scan of every invoice)
    and reaches the lines through their invoice index."""
    user = factories.portal_user(acme)
    params = billing.ListParams(status="all", q="pump")
    query = billing.filtered(user, params, TODAY, billing.Invoice.id)
    plan = query_plan(query)
    if is_sqlite():
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), plan
        assert "customer" in plan and "invoiceline_invoice_id" in plan, plan
    else:
        assert "Seq Scan" not in plan, plan


def test_the_staff_search_finds_by_description_and_po(acme):
    def numbers(q):
        return sorted(i.number for i in backoffice.search_invoices(q))

    assert numbers("overhaul") == ["INV-2001", "INV-9001"]
    assert numbers("PO-AC-7781") == ["INV-2002", "INV-9001"]


@pytest.mark.postgresql
def test_the_staff_description_and_po_search_use_trigram_indexes(acme, monkeypatch):
    plan = search_plan(
        lambda: backoffice.invoice_page("overhaul", "", TODAY, 1), "customer_po", monkeypatch
    )
    assert "invoice_description_trgm" in plan and "invoice_customer_po_trgm" in plan, plan


def test_the_import_takes_the_po(app):
    factories.customer(account_number="ACME01")
    text = (
        "number,account_number,issue_date,due_date,total,customer_po\n"
        f"INV-3001,ACME01,{TODAY - timedelta(days=3)},{TODAY + timedelta(days=27)},10.00,PO-55\n"
    )
    result = importer.import_csv("invoices", io.StringIO(text))
    assert not result.errors, result.errors
    assert Invoice.get(Invoice.number == "INV-3001").customer_po == "PO-55"
