"""The customer's invoices: list, filters, CSV, detail, print, paying from the list, questions."""

import csv
import io
import re
from datetime import date, timedelta

import pytest
from playhouse.test_utils import assert_query_count, count_queries

from portal.models import Case, CaseMessage, Invoice, PaymentAttempt, PaymentAttemptItem
from portal.security import format_code
from portal.services import settings

from . import factories
from .conftest import login

TODAY = date.today()


def _account(n_invoices=0, roles=factories.ALL_ROLES, **user_fields):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example", roles=roles, **user_fields)
    invoices = [
        factories.invoice(
            customer,
            number=f"INV-{1000 + i}",
            total_cents=10_000 + i,
            issue_date=TODAY - timedelta(days=i),
        )[0]
        for i in range(n_invoices)
    ]
    return customer, user, invoices


def _numbers(html: str) -> list[str]:
    return re.findall(r'class="inv-link">([^<]+)<', html)


def test_list_shows_only_own_invoices_and_others_answer_404(app, client):
    """E2: another company's invoice is never listed, and its pages answer 404."""
    customer, user, mine = _account(2)
    other, _ = factories.invoice(factories.customer(), number="INV-OTHER")
    login(client, user.email)
    html = client.get("/invoices/?status=all").get_data(as_text=True)
    assert sorted(_numbers(html)) == ["INV-1000", "INV-1001"]
    for url in (f"/invoices/{other.public_id}", f"/invoices/{other.public_id}/print"):
        assert client.get(url).status_code == 404
    assert (
        client.post(
            f"/invoices/{other.public_id}/question", data={"subject": "x", "message": "y"}
        ).status_code
        == 404
    )
    assert client.get(f"/invoices/{mine[0].public_id}").status_code == 200


def test_site_scoped_user_sees_only_their_sites(app, client):
    """E2: a user limited to a site sees that site's invoices only, in list, CSV and detail."""
    customer = factories.customer()
    north, south = factories.site(customer), factories.site(customer)
    user = factories.portal_user(customer, email="site@example.com", sites=[north])
    here, _ = factories.invoice(customer, number="INV-N", site=north)
    there, _ = factories.invoice(customer, number="INV-S", site=south)
    login(client, user.email)
    assert _numbers(client.get("/invoices/?status=all").get_data(as_text=True)) == ["INV-N"]
    rows = list(
        csv.DictReader(
            io.StringIO(client.get("/invoices/export.csv?status=all").get_data(as_text=True))
        )
    )
    assert [r["number"] for r in rows] == ["INV-N"]
    assert client.get(f"/invoices/{there.public_id}").status_code == 404


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=open", ["INV-O1", "INV-OD", "INV-P1"]),
        ("status=overdue", ["INV-OD"]),
        ("status=paid", ["INV-PD"]),
        ("status=all&sort=number", ["INV-O1", "INV-OD", "INV-P1", "INV-PD", "INV-V"]),
        ("status=all&q=od", ["INV-OD"]),
        ("status=all&q=inv-p&sort=number", ["INV-P1", "INV-PD"]),
        ("status=bogus&sort=bogus", ["INV-O1", "INV-OD", "INV-P1"]),
    ],
)
def test_status_filter_search_and_sort(app, client, query, expected):
    """Filters: open, overdue, paid, all; search by number; unknown values fall back."""
    customer, user, _ = _account()
    old = TODAY - timedelta(days=60)
    factories.invoice(customer, number="INV-OD", issue_date=old)
    factories.invoice(customer, number="INV-O1")
    factories.invoice(customer, number="INV-P1", total_cents=5000, paid_cents=1000)
    factories.invoice(customer, number="INV-PD", total_cents=5000, paid_cents=5000)
    factories.invoice(customer, number="INV-V", status="void")
    login(client, user.email)
    html = client.get(f"/invoices/?{query}").get_data(as_text=True)
    got = _numbers(html)
    assert sorted(got) == sorted(expected)
    if "sort=number" in query:
        assert got == expected


def test_sort_direction_and_pagination(app, client):
    """Pages of 25 with a shareable URL; sorting both ways; page links keep the filter."""
    _, user, invoices = _account(30)
    login(client, user.email)
    first = _numbers(client.get("/invoices/?status=all&sort=number").get_data(as_text=True))
    assert first[0] == "INV-1000" and len(first) == 25
    second = client.get("/invoices/?status=all&sort=number&page=2").get_data(as_text=True)
    assert _numbers(second) == [f"INV-{1025 + i}" for i in range(5)]
    assert 'href="/invoices/?status=all&amp;sort=number"' in second  # back to page 1
    desc = _numbers(client.get("/invoices/?status=all&sort=-number").get_data(as_text=True))
    assert desc[0] == "INV-1029"
    # A page past the end shows the last page rather than an empty one.
    assert (
        _numbers(client.get("/invoices/?status=all&sort=number&page=99").get_data(as_text=True))[-1]
        == "INV-1029"
    )


def test_htmx_gets_the_results_fragment_and_a_canonical_url(app, client, hx):
    """STYLE 9: a targeted htmx request gets only the results, with the clean URL to push."""
    _, user, _ = _account(3)
    login(client, user.email)
    page = client.get("/invoices/?status=open&q=&sort=due")
    assert "<html" in page.get_data(as_text=True)
    fragment = client.get("/invoices/?status=open&q=&sort=due", headers=hx)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<div id="invoice-results"')
    assert fragment.headers["HX-Push-Url"] == "/invoices/?status=open"
    assert "HX-Request" in fragment.headers["Vary"]


def test_csv_export_is_the_filtered_list(app, client):
    """CSV of the filtered list (every page), formulas neutralised."""
    customer, user, _ = _account(30)
    factories.invoice(customer, number="INV-PAID", total_cents=5000, paid_cents=5000)
    factories.invoice(customer, number="INV-EVIL", description="=HYPERLINK(1)")
    login(client, user.email)
    response = client.get("/invoices/export.csv?status=open")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    numbers = {r["number"] for r in rows}
    assert len(rows) == 31 and "INV-PAID" not in numbers
    evil = next(r for r in rows if r["number"] == "INV-EVIL")
    assert evil["description"] == "'=HYPERLINK(1)" and evil["balance"] == "1000.00"


@pytest.mark.parametrize(
    "url",
    [
        "/invoices/?status=all",
        "/invoices/?status=all&page=2",
        "/",
        "/invoices/{id}",
        "/statements/",
        "/statements/payments",
    ],
)
def test_query_count_does_not_grow_with_the_data(app, client, url):
    """Scale: the same number of queries per page for 5 and for 50 invoices."""
    customer, user, invoices = _account(5)
    login(client, user.email)
    target = url.format(id=invoices[0].public_id)
    client.get(target)  # warm-up: first request of a session may differ

    def queries() -> int:
        with count_queries() as counter:
            assert client.get(target).status_code == 200
        return counter.count

    # Compared cold: the cached aggregates (below) would otherwise save queries on one side.
    app.extensions.pop("billing_aggregates", None)
    small = queries()
    for i in range(45):
        factories.invoice(customer, number=f"INV-X{i}", issue_date=TODAY - timedelta(days=40 + i))
    app.extensions.pop("billing_aggregates", None)
    with assert_query_count(small):  # 50 invoices: exactly as many queries as with 5
        assert client.get(target).status_code == 200
    # 12, and the statement that bounds the request's lock waits (db.web_timeouts_sql).
    assert small <= 13, small


def test_detail_shows_lines_payments_and_balance(app, client):
    """Detail: lines, the payments applied and the remaining balance."""
    from portal.models import InvoiceLine, PaymentApplication

    customer, user, _ = _account()
    invoice, _ = factories.invoice(customer, total_cents=50_000, paid_cents=20_000)
    InvoiceLine.create(
        invoice=invoice,
        description="Boiler service",
        quantity_milli=2500,
        unit_price_cents=20_000,
        amount_cents=50_000,
    )
    payment = factories.payment(customer, 20_000, receipt_number="R-000777")
    PaymentApplication.create(payment=payment, invoice=invoice, amount_cents=20_000)
    login(client, user.email)
    html = client.get(f"/invoices/{invoice.public_id}").get_data(as_text=True)
    assert "Boiler service" in html and ">2.5<" in html
    assert "R-000777" in html and "$300.00" in html  # balance due


def test_print_view_has_quick_pay_code_and_qr_of_the_pay_link(app, client):
    """Print: the sealed quick-pay code unsealed for the owner, and an inline SVG QR code."""
    customer, user, _ = _account()
    invoice, code = factories.invoice(customer)
    login(client, user.email)
    html = client.get(f"/invoices/{invoice.public_id}/print").get_data(as_text=True)
    assert format_code(code) in html
    assert "<svg" in html and 'aria-label="QR code' in html
    assert "Balance due" in html


def test_roles_and_module_switch_guard_the_invoices(app, client):
    """Without the invoices role: 403; with the module switched off: 404."""
    _, user, invoices = _account(1, roles="statements")
    login(client, user.email)
    assert client.get("/invoices/").status_code == 403
    assert client.get(f"/invoices/{invoices[0].public_id}").status_code == 403
    settings.save({"module_invoices": False})
    assert client.get("/invoices/").status_code == 404


def _pick(invoices, amounts=None, **extra):
    data = {"invoice": [str(i.id) for i in invoices]}
    for invoice, text in (amounts or {}).items():
        data[f"amount-{invoice.id}"] = text
    data.update(extra)
    return data


def test_running_total_is_recomputed_on_the_server(app, client, hx):
    """The running total as invoices are ticked and amounts typed, checked per invoice."""
    customer, user, _ = _account()
    a, _ = factories.invoice(customer, total_cents=10_000)
    b, _ = factories.invoice(customer, total_cents=20_000)
    login(client, user.email)
    body = client.post("/invoices/total", data=_pick([a, b], {b: "50.00"}), headers=hx).get_data(
        as_text=True
    )
    assert "2 invoices selected" in body and "$150.00" in body
    too_much = client.post("/invoices/total", data=_pick([a], {a: "100.01"}), headers=hx)
    assert "The most you can pay on" in too_much.get_data(as_text=True)
    garbage = client.post("/invoices/total", data=_pick([a], {a: "1e3"}), headers=hx)
    assert "Enter an amount like" in garbage.get_data(as_text=True)


def test_early_payment_discount_per_invoice_when_paid_in_full(app, client):
    """A10: the discount is earned on the invoice cleared in time, not on a partial."""
    customer, user, _ = _account()
    fresh, _ = factories.invoice(
        customer,
        total_cents=10_000,
        discount_bp=200,
        discount_days=10,
        issue_date=TODAY - timedelta(days=2),
    )
    late, _ = factories.invoice(
        customer,
        total_cents=10_000,
        discount_bp=200,
        discount_days=10,
        issue_date=TODAY - timedelta(days=20),
    )
    login(client, user.email)
    html = client.post("/invoices/review", data=_pick([fresh, late])).get_data(as_text=True)
    assert f'value="{fresh.public_id}:9800"' in html and f'value="{late.public_id}:10000"' in html
    assert "$198.00" in html and "$2.00" in html
    partial = client.post("/invoices/review", data=_pick([fresh], {fresh: "50.00"})).get_data(
        as_text=True
    )
    assert f'value="{fresh.public_id}:5000"' in partial and "$2.00" not in partial


def test_partial_payments_follow_the_settings(app, client):
    """Partials only where settings allow, and not below the minimum."""
    customer, user, _ = _account()
    invoice, _ = factories.invoice(customer, total_cents=10_000)
    login(client, user.email)
    small = client.post("/invoices/review", data=_pick([invoice], {invoice: "5.00"}))
    assert small.status_code == 422 and "smallest partial payment" in small.get_data(as_text=True)
    settings.save({"partial_payments": False})
    full = client.post("/invoices/review", data=_pick([invoice], {invoice: "50.00"}))
    assert full.status_code == 200  # typed amounts are ignored: the full balance is paid
    assert f'value="{invoice.public_id}:10000"' in full.get_data(as_text=True)


def test_pay_what_you_can_allocates_oldest_due_first_or_across_the_ticked(app, client):
    """One amount: oldest due first, discounts earned, balance left on each (money.allocate)."""
    customer, user, _ = _account()
    oldest, _ = factories.invoice(
        customer, total_cents=10_000, issue_date=TODAY - timedelta(days=50)
    )
    middle, _ = factories.invoice(
        customer, total_cents=10_000, issue_date=TODAY - timedelta(days=20)
    )
    newest, _ = factories.invoice(
        customer,
        total_cents=10_000,
        issue_date=TODAY - timedelta(days=1),
        discount_bp=500,
        discount_days=10,
    )
    login(client, user.email)
    html = client.post(
        "/invoices/review", data={"action": "amount", "pay_amount": "150.00"}
    ).get_data(as_text=True)
    assert (
        f'value="{oldest.public_id}:10000"' in html and f'value="{middle.public_id}:5000"' in html
    )
    assert f"{newest.public_id}:" not in html and "$50.00" in html  # left on the middle one
    ticked = client.post(
        "/invoices/review", data=_pick([middle, newest], action="amount", pay_amount="195.00")
    )
    body = ticked.get_data(as_text=True)
    assert (
        f'value="{middle.public_id}:10000"' in body and f'value="{newest.public_id}:9500"' in body
    )
    assert "$5.00" in body  # the discount earned by clearing the newest in time
    over = client.post("/invoices/review", data={"action": "amount", "pay_amount": "400.00"})
    assert over.status_code == 422 and "more than" in over.get_data(as_text=True)


def test_pay_all_open_lists_every_open_invoice(app, client):
    customer, user, invoices = _account(3)
    factories.invoice(customer, number="INV-DONE", total_cents=100, paid_cents=100)
    login(client, user.email)
    html = client.post("/invoices/review", data={"action": "all"}).get_data(as_text=True)
    assert html.count('name="line"') == 3 and "$300.03" in html


def test_one_payment_for_several_invoices_through_test_checkout(app, client, mailbox):
    """One attempt, one payment applied to two invoices (one partly); receipt, email, balances."""
    customer, user, _ = _account()
    a, _ = factories.invoice(customer, total_cents=10_000)
    b, _ = factories.invoice(customer, total_cents=30_000)
    login(client, user.email)
    response = client.post(
        "/invoices/pay",
        data={
            "line": [f"{a.id}:10000", f"{b.id}:12000"],
            "payer_name": "Pat Buyer",
            "payer_email": "Pat@Acme.example",
            "provider": "test-checkout",
        },
    )
    assert response.status_code == 303 and "/test-checkout/" in response.location
    attempt = PaymentAttempt.get()
    assert attempt.amount_cents == 22_000 and attempt.portal_user_id == user.id
    assert attempt.payer_email == "pat@acme.example"
    assert {(i.invoice_id, i.amount_cents) for i in PaymentAttemptItem.select()} == {
        (a.id, 10_000),
        (b.id, 12_000),
    }
    done = client.post(response.location, data={"outcome": "pay"}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert "Receipt R-" in html and "$180.00" in html  # what is left on b
    assert Invoice.get_by_id(a.id).balance_cents == 0
    assert Invoice.get_by_id(b.id).balance_cents == 18_000
    from portal.models import Payment

    payment = Payment.get()
    assert payment.amount_cents == 22_000 and payment.applications.count() == 2
    emailed = mailbox.wait_for(1)[-1]
    assert emailed["To"] == "pat@acme.example"
    assert payment.receipt_number in emailed.get_body().get_content()
    assert payment.receipt_number in client.get(
        f"/statements/payments/{payment.public_id}"
    ).get_data(as_text=True)


def test_pay_drops_invoices_of_other_companies_and_rechecks_amounts(app, client):
    """E2/A10: a forged line for someone else's invoice is dropped, a repeated line pays once,
    and amounts are re-checked."""
    customer, user, _ = _account()
    mine, _ = factories.invoice(customer, total_cents=10_000)
    theirs, _ = factories.invoice(factories.customer(), total_cents=10_000)
    login(client, user.email)
    data = {"payer_name": "Pat", "payer_email": "pat@acme.example", "provider": "test-checkout"}
    forged = client.post("/invoices/pay", data={**data, "line": [f"{theirs.id}:10000"]})
    assert forged.status_code == 422 and PaymentAttempt.select().count() == 0
    over = client.post("/invoices/pay", data={**data, "line": [f"{mine.id}:10001"]})
    assert over.status_code == 422 and "The most you can pay" in over.get_data(as_text=True)
    mixed = client.post(
        "/invoices/pay",
        data={**data, "line": [f"{mine.id}:10000", f"{theirs.id}:1", f"{mine.id}:10000"]},
    )
    assert mixed.status_code == 303
    assert [i.invoice_id for i in PaymentAttemptItem.select()] == [mine.id]


def test_pay_without_csrf_token_is_refused(make_app):
    """F1: every billing POST needs the CSRF token."""
    app = make_app(WTF_CSRF_ENABLED=True)
    from portal.db import db

    with app.app_context():
        db.connect(reuse_if_open=True)
        _, user, invoices = _account(1)
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        client.post(
            "/login",
            data={"email": user.email, "password": factories.PASSWORD, "csrf_token": token},
        )
        for url in (
            "/invoices/total",
            "/invoices/review",
            "/invoices/pay",
            f"/invoices/{invoices[0].public_id}/question",
        ):
            assert client.post(url, data={"invoice": str(invoices[0].id)}).status_code == 400, url
        db.close()


def test_question_this_invoice_opens_a_linked_case(app, client, hx):
    """A case linked to the invoice, with the message; shown on the invoice."""
    customer, user, invoices = _account(1)
    invoice = invoices[0]
    login(client, user.email)
    bad = client.post(
        f"/invoices/{invoice.public_id}/question", data={"subject": "", "message": ""}, headers=hx
    )
    assert bad.status_code == 422 and "Say in a few words" in bad.get_data(as_text=True)
    assert Case.select().count() == 0
    response = client.post(
        f"/invoices/{invoice.public_id}/question",
        data={"subject": "Wrong quantity", "message": "We ordered 2, not 3."},
    )
    assert response.status_code == 303
    case = Case.get()
    # It ends on the new case, with the confirmation; a double click is the same case.
    assert response.headers["Location"] == f"/cases/{case.public_id}"
    landed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Your question is case {case.number}" in landed and "Wrong quantity" in landed
    again = client.post(
        f"/invoices/{invoice.public_id}/question",
        data={"subject": "Wrong quantity", "message": "We ordered 2, not 3."},
    )
    assert again.headers["Location"] == response.headers["Location"]
    assert Case.select().count() == 1
    assert case.invoice_id == invoice.id and case.customer_id == customer.id
    assert case.portal_user_id == user.id and case.status == "new"
    assert CaseMessage.get().body == "We ordered 2, not 3."
    html = client.get(f"/invoices/{invoice.public_id}").get_data(as_text=True)
    assert case.number in html and "Wrong quantity" in html


def test_question_needs_the_cases_role(app, client):
    _, user, invoices = _account(1, roles="invoices")
    login(client, user.email)
    html = client.get(f"/invoices/{invoices[0].public_id}").get_data(as_text=True)
    assert "Question this invoice" not in html
    response = client.post(
        f"/invoices/{invoices[0].public_id}/question", data={"subject": "a", "message": "b"}
    )
    assert response.status_code == 403 and Case.select().count() == 0
