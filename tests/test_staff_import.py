"""The CSV import page: all rows or none, with a per-line error report."""

import io

from portal.models import AuditLog, Customer

from . import factories
from .conftest import HX, staff_login

URL = "/staff/import/"


def upload(client, kind, text, headers=None):
    data = {"kind": kind, "file": (io.BytesIO(text.encode()), "data.csv")}
    return client.post(URL, data=data, content_type="multipart/form-data", headers=headers or {})


def test_import_customers_then_report_bad_lines_and_write_nothing(client):
    """A good file is imported (counts shown); a file with bad lines writes nothing at all."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    assert "account_number" in client.get(URL).get_data(as_text=True)

    good = "account_number,name,email\nA1,Alpha Ltd,a@example.com\nB2,Beta Ltd,b@example.com\n"
    response = upload(client, "customers", good)
    assert response.status_code == 200
    assert "2 created, 0 updated" in response.get_data(as_text=True)
    assert Customer.select().count() == 2
    assert AuditLog.select().where(AuditLog.action == "import.customers").count() == 1

    bad = "account_number,name,email\nC3,Gamma Ltd,c@example.com\nD4,,not-an-email\n"
    response = upload(client, "customers", bad, headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" not in html and "Nothing was imported." in html
    assert "line 3" in html
    assert not Customer.select().where(Customer.account_number == "C3").exists()


def test_import_needs_a_file(client):
    """No file: 422 with the reason."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    response = client.post(URL, data={"kind": "customers"}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a CSV file." in response.get_data(as_text=True)


def test_every_kind_is_offered_by_name_and_orders_import_from_the_page(client):
    """The page offers every kind the command line takes, each named as people say it, and
    an orders file imports from it with the result in those words."""
    from portal.services.importer import KINDS

    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    page = client.get(URL).get_data(as_text=True)
    for kind in KINDS:
        assert f'value="{kind}"' in page, kind
    assert "<strong>Sales order lines</strong>" in page and "Order_lines" not in page
    factories.customer(account_number="ACME01")
    response = upload(
        client, "orders", "number,account_number,order_date\nSO-1,ACME01,2026-11-02\n"
    )
    assert response.status_code == 200
    assert "Imported sales orders:</strong> 1 created" in response.get_data(as_text=True)
