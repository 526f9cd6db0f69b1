"""The audit log page: admins only, with filters."""

from portal.db import write_txn
from portal.models import AuditLog
from portal.services import audit

from . import factories
from .conftest import HX, staff_login

URL = "/staff/audit/"


def test_agent_cannot_read_the_audit_log(client):
    """E5: the audit log is for admins."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    assert client.get(URL).status_code == 403
    assert client.get(URL, headers=HX).status_code == 403


def test_filters_by_action_person_object_and_date(client):
    """Entries filter by action prefix, person, object type and id; htmx gets the results."""
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    customer = factories.customer()
    with write_txn():
        audit.record("customer.updated", customer, changes={"name": ["A", "B"]})
        audit.record("invoice.voided", None, reason="Twice")
    html = client.get(URL + "?action=customer.").get_data(as_text=True)
    assert "customer.updated" in html and "invoice.voided" not in html.split('id="results"')[1]
    html = client.get(URL + f"?object_type=customer&object_id={customer.id}", headers=HX).get_data(
        as_text=True
    )
    assert "customer.updated" in html and "<html" not in html
    html = client.get(URL + "?actor=boss@", headers=HX).get_data(as_text=True)
    assert "auth.signed_in" in html
    assert "customer.updated" not in html  # recorded without a signed-in actor
    html = client.get(URL + "?start=2000-01-01&end=2000-01-02", headers=HX).get_data(as_text=True)
    assert "No entries match." in html
    assert AuditLog.select().count() >= 2
