"""Invoices in the back office: list and search, create, edit, void, new code, print."""

import json
import re
from datetime import date, timedelta

import pytest
from playhouse.test_utils import count_queries

from portal.models import AuditLog, Invoice, InvoiceLine, Payment, PaymentApplication
from portal.security import normalize_code, unseal, verify_code
from portal.services import quickpay

from . import factories
from .conftest import HX, staff_login

URL = "/staff/invoices/"


@pytest.fixture
def agent(client):
    user = factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    return user


def invoice_data(who, **overrides) -> dict:
    today = date.today()
    data = {
        "number": "INV-9001",
        "customer": who.account_number,
        "site_id": "0",
        "issue_date": today.isoformat(),
        "due_date": (today + timedelta(days=30)).isoformat(),
        "currency": "USD",
        "total": "",
        "description": "Service visit",
        "lines-0-item_code": "LAB",
        "lines-0-description": "Labour",
        "lines-0-quantity": "2.5",
        "lines-0-unit_price": "80.00",
        "lines-1-description": "Parts",
        "lines-1-quantity": "1",
        "lines-1-unit_price": "45.10",
        "lines-2-description": "",
    }
    data.update(overrides)
    return data


def test_list_search_and_state_filter(client, agent):
    """Search by number or customer; the state filter; htmx gets the results fragment."""
    acme = factories.customer(name="Acme")
    factories.invoice(acme, number="INV-1")
    factories.invoice(acme, number="INV-2", issue_date=date.today() - timedelta(days=90))
    factories.invoice(factories.customer(name="Globex"), number="INV-3", status="void")
    html = client.get(URL).get_data(as_text=True)
    assert all(n in html for n in ("INV-1", "INV-2", "INV-3"))
    html = client.get(URL + "?state=overdue").get_data(as_text=True)
    assert "INV-2" in html and "INV-1" not in html
    response = client.get(URL + "?q=globex", headers=HX)
    html = response.get_data(as_text=True)
    assert "<html" not in html and "INV-3" in html and "INV-1" not in html


def test_create_with_lines_computes_total_and_a_working_code(client, agent):
    """Lines make the total; the new invoice has a quick-pay code that verifies; audited."""
    customer = factories.customer()
    response = client.post(URL + "new", data=invoice_data(customer))
    assert response.status_code == 303
    invoice = Invoice.get(Invoice.number == "INV-9001")
    assert invoice.total_cents == 2.5 * 8000 + 4510
    assert [line.amount_cents for line in invoice.lines.order_by(InvoiceLine.position)] == [
        20000,
        4510,
    ]
    code = unseal(invoice.quick_pay_sealed)
    assert verify_code(invoice.quick_pay_hash, normalize_code(code))
    assert AuditLog.get(AuditLog.action == "invoice.created").actor_label == "agent@example.com"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Labour" in page and "$245.10" in page


def test_create_with_only_a_total(client, agent):
    """Without lines, the typed total is the invoice's total."""
    customer = factories.customer()
    data = invoice_data(customer, total="1,250.00")
    for key in [k for k in data if k.startswith("lines-")]:
        data[key] = ""
    assert client.post(URL + "new", data=data).status_code == 303
    assert Invoice.get(Invoice.number == "INV-9001").total_cents == 125_000


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"number": ""}, "Enter the invoice number."),
        ({"customer": ""}, "Enter the customer&#39;s account number or name."),
        ({"customer": "nobody-like-this"}, "No customer has this account number or name."),
        ({"lines-0-quantity": "-1"}, "Enter a quantity like 2 or 2.5."),
        ({"lines-1-unit_price": "abc"}, "Enter an amount like 1250.00"),
        ({"due_date": "2000-01-01"}, "The due date cannot be before the issue date."),
        ({"discount_percent": "2"}, "Say within how many days"),
    ],
)
def test_invalid_invoice_is_422_and_keeps_typed_values(client, agent, overrides, message):
    """Bad input: 422, the message next to the field, typed values kept, nothing stored."""
    customer = factories.customer()
    response = client.post(URL + "new", data=invoice_data(customer, **overrides))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert 'value="Labour"' in html
    assert Invoice.select().count() == 0


def test_duplicate_number_is_refused(client, agent):
    """An invoice number is unique."""
    customer = factories.customer()
    factories.invoice(customer, number="INV-9001")
    response = client.post(URL + "new", data=invoice_data(customer))
    assert response.status_code == 422
    assert "Another invoice already has this number." in response.get_data(as_text=True)


def test_more_lines_without_javascript_saves_nothing(client, agent):
    """The 'More lines' button re-renders the form with an extra row, typed values kept."""
    customer = factories.customer()
    response = client.post(URL + "new", data=invoice_data(customer, action="more"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="lines-3-description"' in html and 'value="Labour"' in html
    assert Invoice.select().count() == 0


def test_each_line_input_is_labelled_with_its_line_number(client, agent):
    """Issue 19: every input of a row names that row's line, not its column's number."""
    html = client.get(URL + "new").get_data(as_text=True)
    labels = re.findall(
        r'<label class="visually-hidden" for="lines-(\d+)-\w+">[^<]*, line (\d+)<', html
    )
    assert len(labels) >= 8
    assert all(int(line) == int(row) + 1 for row, line in labels), labels


def test_edit_replaces_lines_and_cannot_go_below_paid(client, agent):
    """Editing is audited; the total never drops below what has been paid."""
    customer = factories.customer()
    invoice, _ = factories.invoice(customer, number="INV-5", total_cents=50_000, paid_cents=30_000)
    form = client.get(URL + f"{invoice.id}/edit").get_data(as_text=True)
    assert 'value="500.00"' in form
    data = invoice_data(customer, number="INV-5", total="200.00")
    for key in [k for k in data if k.startswith("lines-")]:
        data[key] = ""
    response = client.post(URL + f"{invoice.id}/edit", data=data)
    assert response.status_code == 422
    assert "cannot be less than what has been paid" in response.get_data(as_text=True)
    response = client.post(URL + f"{invoice.id}/edit", data=dict(data, total="600.00"))
    assert response.status_code == 303
    assert Invoice.get_by_id(invoice.id).total_cents == 60_000
    changes = json.loads(AuditLog.get(AuditLog.action == "invoice.updated").detail)["changes"]
    assert changes["total_cents"] == [50_000, 60_000]


def test_void_needs_a_reason_and_refuses_paid_invoices(client, agent):
    """Void: a reason is required; an invoice with payments applied cannot be voided."""
    customer = factories.customer()
    invoice, _ = factories.invoice(customer)
    response = client.post(URL + f"{invoice.id}/void", data={"reason": ""})
    assert response.status_code == 422
    assert "Say why" in response.get_data(as_text=True)
    response = client.post(URL + f"{invoice.id}/void", data={"reason": "Issued twice"})
    assert response.status_code == 303
    invoice = Invoice.get_by_id(invoice.id)
    assert invoice.status == "void" and invoice.quick_pay_version == 2
    assert json.loads(AuditLog.get(AuditLog.action == "invoice.voided").detail)["reason"] == (
        "Issued twice"
    )

    paid, _ = factories.invoice(customer, paid_cents=1000)
    payment = Payment.create(
        receipt_number="R-1",
        provider="offline",
        provider_reference="x",
        customer=customer,
        amount_cents=1000,
        currency="USD",
    )
    PaymentApplication.create(payment=payment, invoice=paid, amount_cents=1000)
    response = client.post(URL + f"{paid.id}/void", data={"reason": "Oops"})
    assert response.status_code == 422
    assert Invoice.get_by_id(paid.id).status == "open"


def test_regenerate_code_revokes_the_old_code_and_pay_links(client, agent):
    """A new code: the old one no longer verifies and old pay links die; the code is not audited."""
    invoice, old_code = factories.invoice()
    with client.application.test_request_context():
        link_token = quickpay.pay_link(invoice).rsplit("/", 1)[1]
    assert quickpay.open_link(link_token) is not None
    response = client.post(URL + f"{invoice.id}/code")
    assert response.status_code == 303
    invoice = Invoice.get_by_id(invoice.id)
    assert not verify_code(invoice.quick_pay_hash, normalize_code(old_code))
    new_code = unseal(invoice.quick_pay_sealed)
    assert verify_code(invoice.quick_pay_hash, normalize_code(new_code))
    assert quickpay.open_link(link_token) is None
    entry = AuditLog.get(AuditLog.action == "invoice.code_regenerated")
    assert new_code not in entry.detail and normalize_code(new_code) not in entry.detail


def test_print_shows_code_and_qr(client, agent):
    """The printable invoice carries the quick-pay code and a QR code of the pay link."""
    invoice, code = factories.invoice(number="INV-77")
    html = client.get(URL + f"{invoice.id}/print").get_data(as_text=True)
    assert "INV-77" in html
    assert normalize_code(code) in normalize_code(html.split('class="code-box">')[1][:40])
    assert 'src="data:image/svg+xml' in html


def test_site_options_follow_the_customer(client, agent):
    """The htmx site picker offers only the chosen customer's sites."""
    acme = factories.customer()
    north = factories.site(acme, name="North")
    factories.site(factories.customer(), name="Elsewhere")
    url = f"/staff/customers/sites?customer={acme.account_number}"
    html = client.get(url, headers=HX).get_data(as_text=True)
    assert f'<option value="{north.id}">' in html  # nothing chosen yet
    # A refresh while staff are still typing keeps the site already chosen.
    html = client.get(url + f"&site_id={north.id}", headers=HX).get_data(as_text=True)
    assert f'<option selected value="{north.id}">' in html
    assert "North" in html and "Elsewhere" not in html and str(north.id) in html


@pytest.mark.parametrize("url", [URL, "/staff/payments/"])
def test_lists_do_not_query_per_row(app, client, agent, url):
    """The invoice and payment lists fetch their customers in the same query: no N+1."""
    from portal.models import Payment

    def add(n):
        for _ in range(n):
            customer = factories.customer()
            invoice, _ = factories.invoice(customer)
            Payment.create(
                receipt_number=f"R-{invoice.id}",
                provider="offline",
                provider_reference=f"ref-{invoice.id}",
                customer=customer,
                amount_cents=100,
                currency="USD",
            )

    add(2)
    with count_queries() as few:
        client.get(url, headers=HX)
    add(10)
    with count_queries() as many:
        client.get(url, headers=HX)
    assert many.count == few.count


@pytest.fixture
def three(app):
    with app.app_context():
        return (
            factories.customer(account_number="ACME-01", name="Acme Tools"),
            factories.customer(account_number="ACME-02", name="Acme Tools East"),
            factories.customer(account_number="GLOBEX", name="Globex"),
        )


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("acme-02", "ACME-02"),  # an account number, any case
        ("ACME-02 · Acme Tools East", "ACME-02"),  # a picked suggestion
        ("  glob ", "GLOBEX"),  # a name only one customer contains
        ("acme tools", "ACME-01"),  # a name one customer has exactly, though two contain it
        ("Acme", None),
        ("Initech", None),
        ("", None),
    ],
)
def test_customer_box_names_one_customer(app, three, typed, expected):
    """The staff customer box: account number, picked suggestion or an unambiguous name."""
    from portal.services.backoffice import find_customer

    with app.app_context():
        found, message = find_customer(typed)
    assert (found.account_number if found else None) == expected
    assert bool(message) == (expected is None)
    if typed == "Acme":
        assert "Several customers match" in message and "ACME-01 · Acme Tools" in message


def test_customer_suggestions_fill_the_datalist(client, agent, three):
    """As staff type, htmx swaps in suggestions: account numbers starting with the text
    first, then names containing it; only staff get them (E5)."""
    html = client.get("/staff/customers/options?customer=acme", headers=HX).get_data(as_text=True)
    assert html.startswith('<datalist id="customer-options">')
    assert html.index("ACME-01 · Acme Tools") < html.index("ACME-02 · Acme Tools East")
    assert "Globex" not in html
    html = client.get("/staff/customers/options?customer=", headers=HX).get_data(as_text=True)
    assert "<option" not in html
    client.post("/staff/logout")
    response = client.get("/staff/customers/options?customer=acme")
    assert response.status_code in (302, 403) and "Acme" not in response.get_data(as_text=True)


def test_invoice_for_a_customer_named_in_the_box(client, agent, three):
    """Create by name; an ambiguous name is a 422 next to the box that keeps what was typed;
    editing shows the customer as account · name."""
    acme, _, globex = three
    response = client.post(URL + "new", data=invoice_data(globex, customer="globex"))
    assert response.status_code == 303
    invoice = Invoice.get(Invoice.number == "INV-9001")
    assert invoice.customer_id == globex.id
    response = client.post(URL + "new", data=invoice_data(acme, number="INV-9002", customer="Acme"))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Several customers match" in html and 'value="Acme"' in html
    assert 'aria-describedby="customer-hint customer-error"' in html
    html = client.get(URL + f"{invoice.id}/edit").get_data(as_text=True)
    assert 'value="GLOBEX · Globex"' in html and 'list="customer-options"' in html
    html = client.get(URL + f"new?customer_id={acme.id}").get_data(as_text=True)
    assert 'value="ACME-01 · Acme Tools"' in html
