"""Support cases: customers open and follow cases, staff answer; scoping and emails."""

import pytest

from portal.models import AuditLog, Case, CaseMessage
from portal.services import cases

from . import factories
from .conftest import HX, login, staff_login


@pytest.fixture
def buyer():
    customer = factories.customer(name="Acme Manufacturing")
    return factories.portal_user(customer, email="pat@acme.example")


def open_case(client, **data):
    values = {"subject": "Damaged pallet", "body": "Two boxes arrived crushed."}
    values.update(data)
    return client.post("/cases/new", data=values)


def test_customer_opens_a_case_and_sees_it(client, buyer):
    """A new case is numbered, belongs to the user's company and lists under "open"."""
    login(client, "pat@acme.example")
    response = open_case(client)
    assert response.status_code == 303
    case = Case.get()
    assert response.headers["Location"] == f"/cases/{case.public_id}"
    assert case.customer_id == buyer.contact.customer_id
    assert case.status == "new"
    assert [m.body for m in case.messages] == ["Two boxes arrived crushed."]
    assert AuditLog.get(AuditLog.action == "case.created").object_id == str(case.id)

    response = client.get("/cases/")
    assert response.status_code == 200
    listing = response.get_data(as_text=True)
    assert 'aria-current="page">Open</a>' in listing
    assert case.number in listing and "Damaged pallet" in listing
    page = client.get(f"/cases/{case.public_id}").get_data(as_text=True)
    assert "Two boxes arrived crushed." in page


def test_the_case_page_names_the_case_once(client, buyer, app):
    """Issue 19: the number already says "CASE-", so the eyebrow reads "CASE-000001 · opened
    …", not "Case CASE-000001", on the customer's page and the office's."""
    login(client, "pat@acme.example")
    open_case(client)
    case = Case.get()
    html = client.get(f"/cases/{case.public_id}").get_data(as_text=True)
    assert f'<p class="eyebrow">{case.number} · opened ' in html
    assert f"<title>{case.number} · " in html
    factories.staff(email="agent@example.com")
    office = app.test_client()
    staff_login(office, "agent@example.com")
    html = office.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert f'<p class="eyebrow">{case.number} · opened ' in html
    assert "Case CASE-" not in html


@pytest.mark.parametrize(
    "data, field_message",
    [
        ({"subject": ""}, "Say in a few words what this is about."),
        ({"body": "   "}, "Describe the question or problem."),
        ({"subject": "x" * 201}, "Field cannot be longer than 200 characters."),
    ],
)
def test_bad_input_is_422_next_to_the_field_and_writes_nothing(client, buyer, data, field_message):
    """Validation: 422, the message next to the field, typed text kept, no row written."""
    login(client, "pat@acme.example")
    response = open_case(client, **data)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert field_message in body
    assert 'class="error"' in body
    if data.get("body", "x").strip():
        assert "Two boxes arrived crushed." in body
    assert Case.select().count() == 0


def test_htmx_validation_answers_the_form_fragment(client, buyer):
    """An htmx post with an error gets only the form back (STYLE 12)."""
    login(client, "pat@acme.example")
    response = client.post("/cases/new", data={"subject": "", "body": "x"}, headers=HX)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<form method="post" action="/cases/new" id="case-form"')
    assert "<html" not in body


def test_case_about_an_invoice_is_linked_and_scoped(client, buyer):
    """A case may name only an invoice the user can see; another company's invoice is 404."""
    mine, _ = factories.invoice(buyer.contact.customer)
    theirs, _ = factories.invoice(factories.customer())
    login(client, "pat@acme.example")
    form = client.get(f"/cases/new?invoice={mine.public_id}").get_data(as_text=True)
    assert f"Question about invoice {mine.number}" in form
    assert client.get(f"/cases/new?invoice={theirs.public_id}").status_code == 404
    assert open_case(client, invoice=theirs.public_id).status_code == 404
    assert open_case(client, invoice=str(mine.id)).status_code == 404  # E3: no raw ids
    assert open_case(client, invoice=mine.public_id).status_code == 303
    case = Case.get()
    assert case.invoice_id == mine.id
    assert "About invoice" in client.get(f"/cases/{case.public_id}").get_data(as_text=True)


def test_case_about_an_order_is_linked_from_the_order_and_shown_on_both_sides(client, buyer):
    """The order page's "Question about this order?" opens a case about that order (subject
    prefilled); the case links back to it for the customer and in the back office; another
    company's order, a raw id, or a login without the orders role is 404."""
    acme = buyer.contact.customer
    mine = factories.order(acme, number="SO-77")
    theirs = factories.order(factories.customer(), number="SO-99")
    factories.portal_user(acme, email="noorders@acme.example", roles="cases")
    login(client, "pat@acme.example")
    page = client.get(f"/orders/{mine.public_id}").get_data(as_text=True)
    assert f'href="/cases/new?order={mine.public_id}"' in page
    form = client.get(f"/cases/new?order={mine.public_id}").get_data(as_text=True)
    assert "Question about order SO-77" in form and f'value="{mine.public_id}"' in form
    assert client.get(f"/cases/new?order={theirs.public_id}").status_code == 404
    assert client.get(f"/cases/new?order={mine.id}").status_code == 404
    assert open_case(client, order=theirs.public_id).status_code == 404
    assert open_case(client, order=mine.public_id).status_code == 303
    case = Case.get()
    assert case.order_id == mine.id and case.invoice_id is None
    shown = client.get(f"/cases/{case.public_id}").get_data(as_text=True)
    assert "About order" in shown and f'href="/orders/{mine.public_id}"' in shown
    client.post("/logout")
    login(client, "noorders@acme.example")
    assert client.get(f"/cases/new?order={mine.public_id}").status_code == 404
    client.post("/logout")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    staff_page = client.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert f'href="/staff/orders/{mine.id}"' in staff_page and "SO-77" in staff_page


def test_other_company_and_out_of_scope_site_answer_404(client, buyer):
    """E1/E2: another company's case, or a case of a site outside the user's scope, is 404
    on the page and on every action; a missing `cases` role is 403."""
    other_user = factories.portal_user(factories.customer(), email="lee@other.example")
    theirs = cases.create_case(other_user, "Theirs", "Not for Pat")
    acme = buyer.contact.customer
    plant1, plant2 = factories.site(acme, name="Plant 1"), factories.site(acme, name="Plant 2")
    factories.portal_user(acme, email="p1@acme.example", sites=[plant1])
    factories.portal_user(acme, email="noroles@acme.example", roles="invoices")
    plant2_user = factories.portal_user(acme, email="p2@acme.example", sites=[plant2])
    plant2_case = cases.create_case(plant2_user, "Plant 2 issue", "Leaking valve")

    login(client, "pat@acme.example")  # whole account: sees Plant 2's case, not the other company's
    assert client.get(f"/cases/{plant2_case.public_id}").status_code == 200
    for url in (
        f"/cases/{theirs.public_id}",
        f"/cases/{theirs.public_id}/reply",
        f"/cases/{theirs.public_id}/resolve",
    ):
        method = client.get if url.endswith(theirs.public_id) else client.post
        assert method(url, data={"body": "hi"}).status_code == 404, url

    client.post("/logout")
    login(client, "p1@acme.example")
    assert client.get(f"/cases/{plant2_case.public_id}").status_code == 404
    assert "Plant 2 issue" not in client.get("/cases/").get_data(as_text=True)

    client.post("/logout")
    login(client, "noroles@acme.example")
    assert client.get("/cases/").status_code == 403
    assert client.get(f"/cases/{plant2_case.public_id}").status_code == 403
    assert CaseMessage.select().where(CaseMessage.body == "hi").count() == 0


def test_staff_answer_emails_the_customer_and_waits(client, buyer, mailbox):
    """Staff reply: message saved, status set, the "case update" email arrives over SMTP."""
    case = cases.create_case(buyer, "Damaged pallet", "Two boxes arrived crushed.")
    factories.staff(email="sam@example.com")
    mailbox.clear()
    staff_login(client, "sam@example.com")
    page = client.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert "Two boxes arrived crushed." in page
    response = client.post(
        f"/staff/cases/{case.id}/reply",
        data={"body": "A replacement ships today.", "status": "waiting"},
    )
    assert response.status_code == 303
    assert Case.get_by_id(case.id).status == "waiting"
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@acme.example"
    assert case.number in message["Subject"]
    text = message.get_content()
    assert "A replacement ships today." in text
    assert f"/cases/{case.public_id}" in text


def test_internal_notes_are_hidden_from_customers_and_not_emailed(client, buyer, mailbox):
    """An internal note stays in the back office: not on the customer's page, no email."""
    case = cases.create_case(buyer, "Damaged pallet", "Two boxes arrived crushed.")
    factories.staff(email="sam@example.com")
    mailbox.clear()
    staff_login(client, "sam@example.com")
    client.post(
        f"/staff/cases/{case.id}/reply",
        data={"body": "Carrier claim #77 filed.", "internal": "y", "status": "new"},
    )
    assert "Carrier claim #77" in client.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert mailbox.messages == []
    client.post("/staff/logout")
    login(client, "pat@acme.example")
    assert "Carrier claim #77" not in client.get(f"/cases/{case.public_id}").get_data(as_text=True)


def test_staff_must_write_or_change_something(client, buyer):
    """An empty answer that changes nothing is 422 with the message next to the field."""
    case = cases.create_case(buyer, "Damaged pallet", "Two boxes arrived crushed.")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    response = client.post(f"/staff/cases/{case.id}/reply", data={"body": "", "status": "new"})
    assert response.status_code == 422
    assert "Write a message or change the status." in response.get_data(as_text=True)


def test_customer_resolves_and_a_reply_reopens(client, buyer):
    """Resolve is a POST; a later customer reply sends the case back to the office."""
    case = cases.create_case(buyer, "Damaged pallet", "Two boxes arrived crushed.")
    login(client, "pat@acme.example")
    assert client.get(f"/cases/{case.public_id}/resolve").status_code == 405
    assert client.post(f"/cases/{case.public_id}/resolve").status_code == 303
    assert Case.get_by_id(case.id).status == "resolved"
    assert "Resolved" in client.get("/cases/?status=closed").get_data(as_text=True)
    assert (
        client.post(f"/cases/{case.public_id}/reply", data={"body": "It broke again."}).status_code
        == 303
    )
    reopened = Case.get_by_id(case.id)
    assert reopened.status == "open" and reopened.resolved_at is None
    assert client.post(f"/cases/{case.public_id}/reply", data={"body": ""}).status_code == 422


def test_cases_pages_need_a_customer_or_staff_login(client, buyer):
    """Guests are sent to the right sign-in page; customers cannot open the staff queue."""
    assert client.get("/cases/").headers["Location"].startswith("/login")
    assert client.get("/staff/cases/").headers["Location"].startswith("/staff/login")
    assert client.get("/cases/", headers=HX).headers["HX-Redirect"].startswith("/login")
    login(client, "pat@acme.example")
    assert client.get("/staff/cases/").status_code in (302, 403)


def test_staff_read_waiting_as_waiting_for_the_customer(app, client):
    """Issue 18: the office's pages do not call a case waiting on the customer "Waiting for
    you"; the customer's pages still do."""
    user = factories.portal_user()
    case = cases.create_case(user, "Pump noise", "It rattles.")
    Case.update(status="waiting").where(Case.id == case.id).execute()
    staff = factories.staff()
    staff_login(client, staff.email)
    page = client.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert "Waiting for the customer" in page and "Waiting for you" not in page
