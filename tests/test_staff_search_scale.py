"""Staff searches at scale (issue 15): the invoice search finds by number, customer name and
account number without trying "contains" against every invoice's customer, a list counts at
most COUNT_CAP rows ("10,000+"), and on PostgreSQL the number search uses its trigram index."""

import pytest

from portal.db import db, is_sqlite
from portal.services import backoffice

from . import factories
from .conftest import query_plan, staff_login


@pytest.fixture
def office(app, client):
    staff = factories.staff()
    staff_login(client, staff.email)
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    globex = factories.customer(name="Globex Supply", account_number="GLOBEX7")
    invoices = {
        "acme": [factories.invoice(acme, number=f"A-{i:03d}")[0] for i in range(3)],
        "globex": [factories.invoice(globex, number=f"G-{i:03d}")[0] for i in range(2)],
    }
    return invoices


def _numbers(q: str) -> set[str]:
    return {i.number for i in backoffice.search_invoices(q)}


def test_the_invoice_search_finds_by_number_name_and_account(office):
    assert _numbers("A-001") == {"A-001"}
    assert _numbers("globex") == {"G-000", "G-001"}
    assert _numbers("acme0") == {"A-000", "A-001", "A-002"}  # the account number, any case
    assert _numbers("-00") == {"A-000", "A-001", "A-002", "G-000", "G-001"}
    assert _numbers("nothing like it") == set()
    assert _numbers("50%") == set()  # G4: a wildcard is a character, not a pattern


def test_many_matches_are_found_newest_first_through_the_page(office, monkeypatch, client):
    """Past the cap the search takes the newest-first path; both paths give the same page."""
    few = [i.number for i in backoffice.search_invoices("-0")]
    monkeypatch.setattr(backoffice, "SEARCH_COUNT_CAP", 2)
    many = [i.number for i in backoffice.search_invoices("-0")]
    assert few == many and len(many) == 5


def test_a_list_counts_at_most_the_cap_and_says_so(office, monkeypatch, client):
    monkeypatch.setattr(backoffice, "COUNT_CAP", 4)
    page = backoffice.paginate(backoffice.search_invoices(""), 1, size=2)
    assert (page.total, page.capped, page.pages) == (4, True, 2)
    page = backoffice.paginate(backoffice.search_invoices("globex"), 1, size=2)
    assert (page.total, page.capped) == (2, False)
    html = client.get("/staff/invoices/").get_data(as_text=True)
    assert "of 4+" in html and "narrow the search" in html


def test_a_search_counts_its_matches_once_and_at_most_the_search_cap(office, monkeypatch, client):
    """A search says "1,000+" (SEARCH_COUNT_CAP), not "10,000+", and the count it makes to
    choose its plan is the pager's: at a million invoices each count of 10,000 matches cost
    about 100 ms, and there were two."""
    monkeypatch.setattr(backoffice, "SEARCH_COUNT_CAP", 3)
    counts = []
    execute_sql = db.obj.execute_sql

    def recorded(sql, params=None, *args, **kwargs):
        if sql.startswith("SELECT COUNT("):
            counts.append(sql)
        return execute_sql(sql, params, *args, **kwargs)

    monkeypatch.setattr(db.obj, "execute_sql", recorded)
    page = backoffice.invoice_page("-00", "", None, 1)
    assert (page.total, page.capped, len(counts)) == (3, True, 1)
    assert [i.number for i in page.rows] == [i.number for i in backoffice.search_invoices("-00")]
    page = backoffice.invoice_page("globex", "", None, 1)
    assert (page.total, page.capped) == (2, False)
    html = client.get("/staff/invoices/?q=-00").get_data(as_text=True)
    assert "of 3+" in html and "narrow the search" in html
    html = client.get("/staff/invoices/?q=-00&state=open").get_data(as_text=True)
    assert "of 3+" in html


@pytest.mark.postgresql
def test_the_number_search_uses_the_trigram_index_on_postgresql(office):
    plan = query_plan(backoffice.search_invoices("A-00"))
    assert "invoice_number_trgm" in plan, plan


@pytest.mark.postgresql
def test_the_payment_search_uses_its_trigram_indexes_on_postgresql(office):
    """0043: "receipt number contains …" reads an index, not every payment, and a customer's
    name is matched in the customer table, not against each payment's customer."""
    query = backoffice.search_payments("R-00")
    plan = query_plan(query, "indexscan")  # a bitmap scan of each "contains"
    sql = query.sql()[0]
    assert "payment_receipt_number_trgm" in plan, plan
    assert "t2.name" not in plan.lower() and "ILIKE" not in sql.split("WHERE", 1)[0]


def test_open_and_overdue_lists_put_the_oldest_due_first(app, client):
    """The open and overdue lists are what collecting works through: oldest due first, read
    from the unpaid invoices' due-date index (0045), not newest issued first (the overdue
    list walked 360,000 recent invoices to find a page at a million)."""
    from datetime import date

    staff = factories.staff()
    staff_login(client, staff.email)
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    for number, issued, due_days, paid in (
        ("NEW-DUE-SOON", date(2026, 5, 20), 30, 0),
        ("OLD-LONG-DUE", date(2026, 1, 5), 30, 0),
        ("MID-DUE", date(2026, 3, 1), 30, 0),
        ("OLD-PAID", date(2026, 1, 1), 30, 100_000),
    ):
        factories.invoice(
            acme, number=number, issue_date=issued, due_days=due_days, paid_cents=paid
        )
    today = date(2026, 6, 1)
    overdue = [i.number for i in backoffice.invoice_page("", "overdue", today, 1).rows]
    assert overdue == ["OLD-LONG-DUE", "MID-DUE"]
    assert [i.number for i in backoffice.invoice_page("", "open", today, 1).rows] == [
        "OLD-LONG-DUE",
        "MID-DUE",
        "NEW-DUE-SOON",
    ]
    html = client.get("/staff/invoices/?state=open").get_data(as_text=True)
    assert "oldest due first" in html
    assert html.index("OLD-LONG-DUE") < html.index("MID-DUE") < html.index("NEW-DUE-SOON")

    if is_sqlite():
        return  # SQLite's planner takes the status index for a table this small
    plan = query_plan(backoffice.search_invoices("", "overdue", today).limit(25))
    assert "invoice_unpaid_due" in plan, plan
