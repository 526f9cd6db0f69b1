"""Staff searches at scale (issue 15): the invoice search finds by number, customer name and
account number without trying "contains" against every invoice's customer, a list counts at
most COUNT_CAP rows ("10,000+"), and on PostgreSQL the number search uses its trigram index."""

import pytest

from portal.db import db, is_sqlite
from portal.services import backoffice

from . import factories
from .conftest import query_plan, search_plan, staff_login


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
    """A search says "1,000+" (SEARCH_COUNT_CAP), not "10,000+", and its matches are read
    once: the read that counts them (up to the cap) is the one that sorts them, so a search
    is three statements (its customers, its matches, its page) and no COUNT."""
    monkeypatch.setattr(backoffice, "SEARCH_COUNT_CAP", 3)
    statements = []
    execute_sql = db.obj.execute_sql

    def recorded(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return execute_sql(sql, params, *args, **kwargs)

    monkeypatch.setattr(db.obj, "execute_sql", recorded)
    page = backoffice.invoice_page("-00", "", None, 1)
    assert (page.total, page.capped) == (3, True)
    assert len(statements) == 3 and not [s for s in statements if "COUNT(" in s]
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
def test_the_payment_search_uses_its_trigram_indexes_on_postgresql(office, monkeypatch):
    """0043: "receipt number contains …" reads an index, not every payment, and a customer's
    name is matched in the customer table, not against each payment's customer. The search
    reads its matches in one statement, each "contains" planned alone (a UNION ALL)."""
    acme = factories.customer(name="Initech", account_number="INIT3")
    for n in range(3):
        factories.payment(acme, receipt_number=f"R-00{n}")
    plan = search_plan(lambda: backoffice.payment_page(1, q="R-00"), "receipt_number", monkeypatch)
    assert "payment_receipt_number_trgm" in plan, plan
    assert "customer" not in plan
    page = backoffice.payment_page(1, q="R-00")
    assert sorted(p.receipt_number for p in page.rows) == ["R-000", "R-001", "R-002"]


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


@pytest.fixture
def mixed(app):
    """Invoices and payments of three customers on four days (many on the same day), with
    numbers, descriptions, POs and payers that several parts of one search match at once."""
    from datetime import date, datetime, timedelta

    acme = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    globex = factories.customer(name="Globex Supply", account_number="GLOBEX7")
    initech = factories.customer(name="Initech Widgets", account_number="INIT3")
    customers = [acme, globex, initech]
    days = [date(2026, 5, d) for d in (1, 9, 9, 20)]
    for i in range(24):
        factories.invoice(
            customers[i % 3],
            number=f"N-{i:03d}" if i % 4 else f"WIDGET-{i:03d}",
            issue_date=days[i % 4],
            description="widget repair" if i % 5 == 0 else "service",
            customer_po="PO-widget" if i % 6 == 0 else "",
        )
        factories.payment(
            customers[i % 3],
            receipt_number=f"R-{i:04d}",
            payer_name="Widget Accounts" if i % 5 == 0 else "Accounts payable",
            received_at=datetime(2026, 5, 1) + timedelta(days=(i % 4) * 3),
        )
    return customers


def _expected(rows, q, fields, key):
    """What a search must show, worked out here: the rows with `q` in any of `fields` (or
    their customer's name or account), any case, newest first."""
    q = q.lower()

    def matches(row):
        texts = [getattr(row, f) for f in fields]
        texts += [row.customer.name, row.customer.account_number]
        return any(q in text.lower() for text in texts)

    return [r.id for r in sorted((r for r in rows if matches(r)), key=key, reverse=True)]


@pytest.mark.parametrize("q", ["widget", "acme", "-00", "N-01", "R-000", "nothing like it"])
@pytest.mark.parametrize("cap", [1_000, 5])
def test_every_page_of_a_search_is_the_full_list_cut_in_order(mixed, monkeypatch, q, cap):
    """The page a search shows is that slice of all its matches, newest first (ties by id),
    with few matches (sorted from the matches in hand) and many (each part of the search
    read newest first from its own index, then merged), on every page and past the last."""
    from portal.models import Invoice, Payment

    monkeypatch.setattr(backoffice, "SEARCH_COUNT_CAP", cap)
    monkeypatch.setattr(backoffice, "PAGE_SIZE", 2)
    invoices = _expected(
        Invoice.select(),
        q,
        ("number", "description", "customer_po"),
        lambda i: (i.issue_date, i.id),
    )
    payments = _expected(
        Payment.select(),
        q,
        ("receipt_number", "provider_reference", "payer_email", "payer_name"),
        lambda p: (p.received_at, p.id),
    )
    for expected, page_of in (
        (invoices, lambda n: backoffice.invoice_page(q, "", None, n)),
        (payments, lambda n: backoffice.payment_page(n, q=q)),
    ):
        shown = expected[:cap]
        pages = max(1, -(-len(shown) // 2))
        for number in range(1, pages + 2):
            page = page_of(number)
            last = min(number, pages)
            assert [r.id for r in page.rows] == expected[(last - 1) * 2 : last * 2], (q, number)
            assert (page.total, page.capped) == (len(shown), len(expected) > cap)
    assert [i.id for i in backoffice.search_invoices(q)] == invoices
    assert [p.id for p in backoffice.search_payments(q)] == payments


def test_a_number_search_finds_the_number_in_longer_ones_not_its_digits_alone(app):
    """The digits of a number are looked for first (the trigram index on PostgreSQL), but a
    match still holds the whole number typed: "A-001" is in "XA-0012", not in "B-001"."""
    acme = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    for number in ("A-001", "XA-0012", "B-001", "A-01", "a-0015"):
        factories.invoice(acme, number=number)
    for receipt in ("R-0042", "XR-00420", "Q-0042", "R-042"):
        factories.payment(acme, receipt_number=receipt)
    assert _numbers("A-001") == {"A-001", "XA-0012", "a-0015"}
    assert _numbers("001") == {"A-001", "XA-0012", "B-001", "a-0015"}
    found = {p.receipt_number for p in backoffice.payment_page(1, q="R-0042").rows}
    assert found == {"R-0042", "XR-00420"}


def test_a_payment_search_counts_to_the_search_cap_and_the_list_to_the_list_cap(
    mixed, monkeypatch, client
):
    """As the invoice list: a payment search says "1,000+" (it counted to 10,000), the plain
    list "10,000+"; with another filter the search is counted on the filtered rows."""
    monkeypatch.setattr(backoffice, "SEARCH_COUNT_CAP", 3)
    monkeypatch.setattr(backoffice, "COUNT_CAP", 4)
    staff_login(client, factories.staff().email)
    page = backoffice.payment_page(1, q="accounts")
    assert (page.total, page.capped) == (3, True)
    page = backoffice.payment_page(1)
    assert (page.total, page.capped) == (4, True)
    page = backoffice.payment_page(1, q="widget accounts", status="applied")
    assert (page.total, page.capped) == (3, True)
    html = client.get("/staff/payments/?q=accounts").get_data(as_text=True)
    assert "of 3+" in html and "narrow the search" in html


def test_the_invoice_lists_count_their_rows_up_to_the_list_cap(mixed, monkeypatch):
    """The unfiltered, open and overdue lists count the invoices alone, to COUNT_CAP."""
    from datetime import date

    today = date(2026, 6, 15)
    assert backoffice.invoice_page("", "", today, 1).total == 24
    overdue = backoffice.invoice_page("", "overdue", today, 1)
    assert (overdue.total, overdue.capped) == (18, False)  # due 31 May and 8 June
    monkeypatch.setattr(backoffice, "COUNT_CAP", 4)
    for state in ("", "open", "overdue"):
        page = backoffice.invoice_page("", state, today, 1)
        assert (page.total, page.capped) == (4, True), state


@pytest.mark.postgresql
def test_the_newest_first_lists_read_their_order_from_an_index_on_postgresql(mixed):
    """0048: a page of the invoice or payment list is read in order from an index holding
    the date and the id; with the date alone a day's rows were sorted (9,800 payments).
    Sorts are off too: on a test's tiny tables, with the statistics an earlier test's
    ANALYZE left, a sort is cheapest, and the question is whether the index can serve."""
    plan = query_plan(backoffice.search_invoices("").limit(25), "sort")
    assert "invoice_newest" in plan and "Sort" not in plan, plan
    plan = query_plan(backoffice.search_payments("").limit(25), "sort")
    assert "payment_newest" in plan and "Sort" not in plan, plan
