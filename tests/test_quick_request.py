"""Guest quick requests (setting "Quick requests"): ask for service without signing in."""

import io

import pytest
from PIL import Image

from portal.models import Attachment, AuditLog, Case, CaseMessage
from portal.services import settings

from . import factories
from .conftest import staff_login


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 200)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def account(app):
    customer = factories.customer(name="Harbour Dental", account_number="HD100")
    site = factories.site(customer, site_code="NORTH", name="North clinic")
    factories.portal_user(customer, email="office@harbour.example")
    factories.portal_user(customer, email="north@harbour.example", sites=[site])
    invoice, code = factories.invoice(customer, site=site)
    return customer, site, invoice, code


def send(client, *, with_photo=False, **data):
    values = {
        "identify": "invoice",
        "name": "Sam Guest",
        "email": "sam@guest.example",
        "description": "The chair's lift is stuck.",
    }
    values.update(data)
    if with_photo:
        values["photo"] = [(io.BytesIO(photo()), "chair.jpg")]
    return client.post("/request-service/", data=values, content_type="multipart/form-data")


def test_switch_off_means_no_link_and_404(client, app):
    """The sign-in page offers the form only when the switch is on."""
    settings.save({"quick_requests": False})
    assert "Request service" not in client.get("/login").get_data(as_text=True)
    assert client.get("/request-service/").status_code == 404
    settings.save({"quick_requests": True})
    assert 'href="/request-service/">Request service</a>' in client.get("/login").get_data(
        as_text=True
    )
    assert client.get("/request-service/").status_code == 200


def test_invoice_and_code_open_a_case_with_the_photo_and_tell_the_contacts(
    client, app, account, mailbox
):
    """A right identification: a new case on the account and site, the photo on its first
    message (re-encoded), the account's contacts emailed; staff find it in the queue."""
    customer, site, invoice, code = account
    response = send(client, invoice_number=invoice.number, quick_pay_code=code, with_photo=True)
    assert response.status_code == 303
    assert response.headers["Location"] == "/request-service/sent"
    case = Case.get()
    assert (case.customer_id, case.site_id, case.status) == (customer.id, site.id, "new")
    message = CaseMessage.get()
    assert "Sam Guest, sam@guest.example" in message.body
    assert "The chair's lift is stuck." in message.body
    (attachment,) = Attachment.select()
    assert attachment.owner_id == message.id and attachment.content_type == "image/jpeg"
    mails = mailbox.wait_for(2)
    assert sorted(m["To"] for m in mails) == ["north@harbour.example", "office@harbour.example"]
    assert case.number in mails[0]["Subject"] or case.number in mails[0].get_payload()

    staff = app.test_client()
    factories.staff("agent@office.example")
    staff_login(staff, "agent@office.example")
    queue = staff.get("/staff/cases/").get_data(as_text=True)
    assert case.number in queue
    page = staff.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert f"/staff/attachments/{attachment.key}/thumb" in page


def test_account_number_and_site_code_work_too(client, account):
    customer, site, _, _ = account
    response = send(client, identify="account", account_number="hd100", site_code="north")
    assert response.headers["Location"] == "/request-service/sent"
    assert Case.get().site_id == site.id


@pytest.mark.parametrize(
    "data",
    [
        {"invoice_number": "INV-NOPE", "quick_pay_code": "ABCD-EFGH-JKLM"},
        {"identify": "account", "account_number": "HD100", "site_code": "SOUTH"},
        {"identify": "account", "account_number": "XX999", "site_code": "NORTH"},
    ],
)
def test_wrong_identification_gets_the_same_answer_and_creates_nothing(
    client, account, mailbox, data
):
    """A1: a wrong invoice, code, account or site: the same 303 to the same page, no case,
    no email, and the failure is counted."""
    _, _, invoice, _ = account
    response = send(client, **data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/request-service/sent"
    assert Case.select().count() == 0 and Attachment.select().count() == 0
    assert mailbox.messages == []
    assert AuditLog.get(AuditLog.action == "case.quick_request_refused")


def test_wrong_code_for_a_real_invoice_creates_nothing(client, account):
    _, _, invoice, _ = account
    send(client, invoice_number=invoice.number, quick_pay_code="WRONG-CODE-0000")
    assert Case.select().count() == 0


def test_throttled_like_the_other_guest_forms(client, account):
    """A5: five requests an hour from one address; the sixth, even right, creates nothing
    and gets the same answer."""
    _, _, invoice, code = account
    for _ in range(5):
        assert send(client, invoice_number=invoice.number, quick_pay_code=code).status_code == 303
    assert Case.select().count() == 5
    response = send(client, invoice_number=invoice.number, quick_pay_code=code)
    assert response.headers["Location"] == "/request-service/sent"
    assert Case.select().count() == 5


def test_missing_fields_are_422_and_keep_the_text(client, account):
    response = send(client, description="Broken chair", name="Sam")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Enter the invoice number." in page and "Broken chair" in page
    response = send(
        client,
        identify="account",
        account_number="HD100",
        site_code="NORTH",
        photo=[(io.BytesIO(b"%PDF-1.4\n"), "plan.pdf")],
    )
    assert response.status_code == 422
    assert "Attach a photo (PNG, JPEG, GIF or WebP)." in response.get_data(as_text=True)
    assert Case.select().count() == 0
