"""Invoice-verified self-registration (checklist B1-B5, B7, B9, B10) and its emails."""

import re

import pytest

from portal.models import AuditLog, Contact, LoginSession, OutboxMessage, PortalUser
from portal.services import settings

from . import factories
from .conftest import HX

SENT = "If the details match our records, we have emailed you what happens next"


@pytest.fixture
def acme():
    customer = factories.customer(name="Acme Manufacturing", allow_self_registration=True)
    invoice, code = factories.invoice(customer)
    return customer, invoice, code


def form(invoice, code, email="new.person@acme.example", name="Robin Clerk", **extra):
    data = {"invoice_number": invoice.number, "code": code, "name": name, "email": email}
    data.update(extra)
    return data


def link_in(message) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"http://\S+", body).group(0)


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_the_register_page_works(client):
    response = client.get("/register/")
    assert response.status_code == 200
    assert 'name="invoice_number"' in response.get_data(as_text=True)


def test_registration_is_404_when_switched_off(client):
    settings.save({"self_registration": False})
    assert client.get("/register/").status_code == 404


def test_matching_invoice_registers_and_the_link_signs_in(client, acme, mailbox):
    customer, invoice, code = acme
    response = client.post("/register/", data=form(invoice, code, phone="555-0100"))
    assert response.status_code == 303
    assert response.headers["Location"] == "/register/sent"
    user = PortalUser.get()
    assert user.status == "invited" and user.contact.customer_id == customer.id
    assert (user.contact.first_name, user.contact.last_name) == ("Robin", "Clerk")
    assert user.role_set == set(settings.get("default_roles"))

    (message,) = mailbox.wait_for(1)
    assert message["To"] == "new.person@acme.example"
    link = link_in(message)
    assert link.startswith("http://localhost/register/confirm/")

    # B7: the token leaves the URL at once.
    landed = client.get(path_of(link))
    assert landed.status_code == 303 and landed.headers["Location"] == "/register/confirm"
    page = client.get("/register/confirm")
    assert page.status_code == 200 and "new.person@acme.example" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"]

    pw = "maple syrup morning"
    done = client.post("/register/confirm", data={"password": pw, "confirm": pw})
    assert done.status_code == 303 and done.headers["Location"] == "/"
    user = PortalUser.get_by_id(user.id)
    assert user.status == "active" and user.activated_at is not None
    assert LoginSession.select().where(LoginSession.portal_user == user.id).count() == 1
    assert b"Robin" in client.get("/").data


def test_the_link_works_once(client, acme, mailbox, app):
    """B5 (2): redeem twice -> the second is rejected with the generic page."""
    _, invoice, code = acme
    client.post("/register/", data=form(invoice, code))
    link = path_of(link_in(mailbox.wait_for(1)[0]))
    pw = {"password": "maple syrup morning", "confirm": "maple syrup morning"}
    client.get(link)
    assert client.post("/register/confirm", data=pw).status_code == 303
    other = app.test_client()
    other.get(link)
    again = other.get("/register/confirm")
    assert again.status_code == 400
    assert "invalid or expired" in again.get_data(as_text=True)


@pytest.mark.parametrize(
    "case", ["match", "wrong_code", "unknown_invoice", "existing_email", "not_allowed", "throttled"]
)
def test_one_answer_whatever_happened(client, acme, case, mailbox):
    """B1: match, mismatch, already registered and throttled all answer the same."""
    customer, invoice, code = acme
    data = form(invoice, code)
    if case == "wrong_code":
        data["code"] = "AAAA-BBBB-CCCC"
    elif case == "unknown_invoice":
        data["invoice_number"] = "INV-999999"
    elif case == "existing_email":
        factories.portal_user(customer, email="new.person@acme.example")
    elif case == "not_allowed":
        customer.allow_self_registration = False
        customer.save()
    elif case == "throttled":
        for _ in range(5):
            client.post("/register/", data=dict(data, code="AAAA-BBBB-CCCC"))
    response = client.post("/register/", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/register/sent"
    sent = client.get(response.headers["Location"])
    assert SENT in sent.get_data(as_text=True)
    htmx = client.post("/register/", data=data, headers=HX)
    assert (htmx.status_code, htmx.headers["HX-Redirect"]) == (204, "/register/sent")


def test_wrong_code_creates_nothing_and_sends_nothing(client, acme, mailbox):
    _, invoice, _ = acme
    client.post("/register/", data=form(invoice, "AAAA-BBBB-CCCC"))
    assert PortalUser.select().count() == 0
    assert Contact.select().count() == 0
    assert OutboxMessage.select().count() == 0
    assert AuditLog.get(AuditLog.action == "access.register_failed").ip == "127.0.0.1"


def test_existing_login_gets_a_notice_not_a_second_login(client, acme, mailbox):
    """B2."""
    customer, invoice, code = acme
    owner = factories.portal_user(customer, email="owner@acme.example")
    client.post("/register/", data=form(invoice, code, email="OWNER@acme.example"))
    assert PortalUser.select().count() == 1
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "owner@acme.example"
    assert "tried to register" in message["Subject"]
    assert PortalUser.get_by_id(owner.id).status == "active"


def test_existing_contact_without_login_is_matched_by_email(client, acme, mailbox):
    customer, invoice, code = acme
    contact = Contact.create(customer=customer, email="kim@acme.example", first_name="Kim")
    client.post("/register/", data=form(invoice, code, email="Kim@Acme.example", name="Other"))
    assert Contact.select().count() == 1
    assert PortalUser.get().contact_id == contact.id


def test_contact_of_another_company_is_not_moved(client, acme, mailbox):
    _, invoice, code = acme
    other = factories.customer()
    Contact.create(customer=other, email="kim@other.example")
    client.post("/register/", data=form(invoice, code, email="kim@other.example"))
    assert PortalUser.select().count() == 0
    assert OutboxMessage.select().count() == 0


def test_emails_per_address_are_capped(client, acme, mailbox):
    """B3: ten registrations for one email send at most three emails."""
    customer, invoice, code = acme
    factories.portal_user(customer, email="target@acme.example")
    for _ in range(10):
        client.post("/register/", data=form(invoice, code, email="target@acme.example"))
    assert OutboxMessage.select().where(OutboxMessage.to_addr == "target@acme.example").count() <= 3


def test_failures_per_invoice_lock_that_invoice(client, acme, mailbox):
    """B3: after five wrong codes, even the right code registers nobody."""
    _, invoice, code = acme
    for n in range(5):
        client.post(
            "/register/",
            data=form(invoice, "AAAA-BBBB-CCCC", email=f"x{n}@a.example"),
            environ_base={"REMOTE_ADDR": f"203.0.113.{n}"},
        )
    client.post("/register/", data=form(invoice, code), environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert PortalUser.select().count() == 0


def test_attempts_per_client_address_are_capped(client, mailbox):
    """B3: one address cannot try invoice after invoice."""
    customer = factories.customer(allow_self_registration=True)
    invoices = [factories.invoice(customer) for _ in range(11)]
    for n, (invoice, _) in enumerate(invoices[:10]):
        client.post("/register/", data=form(invoice, "AAAA-BBBB-CCCC", email=f"p{n}@a.example"))
    invoice, code = invoices[10]
    client.post("/register/", data=form(invoice, code))
    assert PortalUser.select().count() == 0


def test_company_with_an_admin_gets_a_pending_login(client, acme, mailbox):
    """B4: pending, cannot sign in, the company admin is notified."""
    customer, invoice, code = acme
    admin = factories.portal_user(customer, email="boss@acme.example")
    client.post("/register/", data=form(invoice, code))
    user = PortalUser.get(PortalUser.id != admin.id)
    assert user.status == "pending"
    messages = mailbox.wait_for(2)
    to_admin = [m for m in messages if m["To"] == "boss@acme.example"]
    assert to_admin and "asks for a" in to_admin[0]["Subject"]
    assert "http://localhost/company" in to_admin[0].get_body(("plain",)).get_content()
    to_person = [m for m in messages if m["To"] == "new.person@acme.example"]
    assert "waiting for approval" in to_person[0]["Subject"]
    assert "http" not in to_person[0].get_body(("plain",)).get_content().split("If you")[0]
    response = client.post(
        "/login", data={"email": "new.person@acme.example", "password": "anything at all"}
    )
    assert response.status_code == 422


def test_account_number_path_only_when_allowed(client, acme, mailbox):
    customer, invoice, _ = acme
    client.post("/register/", data=form(invoice, customer.account_number, email="a@acme.example"))
    assert PortalUser.select().count() == 0
    settings.save({"quick_pay_account_number": True})
    assert "Quick-pay code or account number" in client.get("/register/").get_data(as_text=True)
    client.post("/register/", data=form(invoice, customer.account_number, email="b@acme.example"))
    assert PortalUser.get().contact.email == "b@acme.example"


@pytest.mark.parametrize("name", ["x\r\nBcc: evil@example.com", "Robin\nClerk", "Robin\u2028"])
def test_line_breaks_in_the_name_are_refused(client, acme, mailbox, name):
    """B9."""
    _, invoice, code = acme
    response = client.post("/register/", data=form(invoice, code, name=name))
    assert response.status_code == 422
    assert "letters, numbers and punctuation" in response.get_data(as_text=True)
    assert OutboxMessage.select().count() == 0


def test_invalid_form_keeps_values_but_not_the_code(client, acme):
    _, invoice, code = acme
    response = client.post("/register/", data=form(invoice, code, email="not an email"))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert invoice.number in html and code not in html
    assert "Enter a valid email address." in html


def test_mass_assignment_is_ignored(client, acme, mailbox):
    """E4: extra fields cannot choose roles, company or status."""
    _, invoice, code = acme
    other = factories.customer()
    client.post(
        "/register/",
        data=form(invoice, code, roles="company_admin", customer=other.id, status="active"),
    )
    user = PortalUser.get()
    assert user.status == "invited" and not user.has_role("company_admin")
    assert user.contact.customer_id != other.id


def test_mail_down_keeps_the_registration_and_the_email(make_app, mailbox):
    """B10: SMTP unreachable -> the login and its queued email are still committed."""
    from portal.db import db

    app = make_app(MAIL_URL="smtp://127.0.0.1:9")
    with app.app_context():
        db.connect(reuse_if_open=True)
        customer = factories.customer(allow_self_registration=True)
        invoice, code = factories.invoice(customer)
        response = app.test_client().post("/register/", data=form(invoice, code))
        assert response.status_code == 303
        assert PortalUser.select().count() == 1
        message = OutboxMessage.get()
        assert message.status == "queued" and message.kind == "registration"
        db.close()


def test_unknown_invoice_costs_the_same_hash_work(client, acme, monkeypatch):
    """B1 / A2: an unknown invoice number still verifies a (dummy) code hash, once."""
    from argon2 import PasswordHasher

    _, invoice, _ = acme
    calls = []
    original = PasswordHasher.verify
    monkeypatch.setattr(
        PasswordHasher,
        "verify",
        lambda self, hash_, secret: calls.append(1) or original(self, hash_, secret),
    )
    for number in (invoice.number, "INV-404404"):
        calls.clear()
        client.post("/register/", data=form(invoice, "AAAA-BBBB-CCCC", invoice_number=number))
        assert calls == [1], number
