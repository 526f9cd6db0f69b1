"""Case categories chosen by customers; priority and owner set by staff; the queue's filters
and counts, and "assigned to me"."""

import pytest

from portal.models import AuditLog, Case
from portal.services import cases

from . import factories
from .conftest import login, staff_login


@pytest.fixture
def people(app):
    buyer = factories.portal_user(factories.customer(name="Acme"), email="pat@acme.example")
    ann = factories.staff("ann@office.example")
    bob = factories.staff("bob@office.example")
    customer = app.test_client()
    login(customer, "pat@acme.example")
    staff = app.test_client()
    staff_login(staff, "ann@office.example")
    return buyer, ann, bob, customer, staff


def test_customer_chooses_a_category_from_settings(people):
    _, _, _, customer, _ = people
    page = customer.get("/cases/new").get_data(as_text=True)
    assert '<option value="Delivery">Delivery</option>' in page
    answer = customer.post(
        "/cases/new", data={"subject": "Late", "body": "Where is it?", "category": "Delivery"}
    )
    assert answer.status_code == 303
    assert Case.get().category == "Delivery"
    bad = customer.post(
        "/cases/new", data={"subject": "Late", "body": "x", "category": "Free money"}
    )
    assert bad.status_code == 422
    assert "Choose a category from the list." in bad.get_data(as_text=True)


def test_staff_set_priority_owner_and_category_audited(people):
    buyer, ann, bob, _, staff = people
    case = cases.create_case(buyer, "Broken", "It broke")
    answer = staff.post(
        f"/staff/cases/{case.id}/details",
        data={"category": "Service request", "priority": "urgent", "assigned_to": str(bob.id)},
    )
    assert answer.status_code == 303
    case = Case.get_by_id(case.id)
    assert (case.category, case.priority, case.assigned_to_id) == (
        "Service request",
        "urgent",
        bob.id,
    )
    assert AuditLog.get(AuditLog.action == "case.details_changed")
    bad = staff.post(
        f"/staff/cases/{case.id}/details",
        data={"category": "", "priority": "whenever", "assigned_to": "999999"},
    )
    assert bad.status_code == 422
    assert Case.get_by_id(case.id).priority == "urgent"


def test_queue_filters_and_counts_and_assigned_to_me(people):
    buyer, ann, bob, _, staff = people
    mine = cases.create_case(buyer, "Mine urgent", "a", category="Billing")
    cases.set_details(mine, ann, "Billing", "urgent", ann.id)
    theirs = cases.create_case(buyer, "Bob case", "b", category="Delivery")
    cases.set_details(theirs, ann, "Delivery", "normal", bob.id)
    cases.create_case(buyer, "Nobody case", "c")

    page = staff.get("/staff/cases/").get_data(as_text=True)
    assert "Assigned to me (1)" in page and "Nobody (1)" in page
    assert "Urgent (1)" in page and "Billing (1)" in page and "Delivery (1)" in page

    def subjects(query):
        html = staff.get("/staff/cases/?" + query).get_data(as_text=True)
        return [s for s in ("Mine urgent", "Bob case", "Nobody case") if s in html]

    assert subjects("owner=me") == ["Mine urgent"]
    assert subjects("owner=none") == ["Nobody case"]
    assert subjects(f"owner={bob.id}") == ["Bob case"]
    assert subjects("priority=urgent") == ["Mine urgent"]
    assert subjects("category=Delivery") == ["Bob case"]
    assert subjects("") == ["Mine urgent", "Bob case", "Nobody case"]
