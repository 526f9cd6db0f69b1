"""The customer's statement on its back-office page (issue 19): the customer's own statement
(the same service and document), with the period chooser."""

from . import factories
from .conftest import login, staff_login


def test_staff_customer_page_shows_the_statement_the_customer_sees(app):
    acme = factories.customer(name="Acme")
    factories.invoice(acme, total_cents=123_456)
    user = factories.portal_user(acme)
    factories.staff(email="agent@example.com")
    customer = app.test_client()
    login(customer, user.email)
    theirs = customer.get("/statements/").get_data(as_text=True)
    staff = app.test_client()
    staff_login(staff, "agent@example.com")
    page = staff.get(f"/staff/customers/{acme.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Statement of account" in html
    assert "$1,234.56" in html and "$1,234.56" in theirs
    # The back office links its own invoice page, not the customer's.
    assert "/staff/invoices/" in html.split("Statement of account")[1]


def test_the_period_chooser_and_its_errors(app):
    acme = factories.customer(name="Acme")
    factories.invoice(acme, total_cents=50_000)
    factories.staff(email="agent@example.com")
    staff = app.test_client()
    staff_login(staff, "agent@example.com")
    empty = staff.get(f"/staff/customers/{acme.id}?start=2001-01-01&end=2001-01-31")
    assert "No invoices or payments in this period." in empty.get_data(as_text=True)
    bad = staff.get(f"/staff/customers/{acme.id}?start=2020-02-01&end=2020-01-01")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 200 and 'aria-invalid="true"' in html
    assert 'value="2020-02-01"' in html
