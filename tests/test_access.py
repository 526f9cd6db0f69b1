"""The sign-in page driven by settings (login message, terms, links), and portal access:
invitations, access requests and the service API the back office calls."""

import pytest

from portal.models import AuditLog, LoginSession, PortalUser, TermsAcceptance
from portal.services import settings

from . import factories
from .conftest import HX, login

TERMS = "Use of this portal is **subject** to our terms of trade."


def set_terms(text=TERMS, required=True):
    """Staff edit of the terms: a new text gets a new version."""
    settings.update({"login_terms": text, "require_terms_acceptance": required})


def signed_in(client) -> bool:
    return client.get("/").status_code == 200 and b"Sign out" in client.get("/").data


# --- the sign-in page ---------------------------------------------------------------------


def test_login_message_is_rendered_from_markdown_and_sanitised(client):
    settings.save({"login_message": "**Office closed** Friday <script>alert(1)</script>"})
    html = client.get("/login").get_data(as_text=True)
    assert "<strong>Office closed</strong>" in html
    assert "<script>alert(1)" not in html


def test_terms_are_shown_without_a_box_when_acceptance_is_not_required(client):
    set_terms(required=False)
    html = client.get("/login").get_data(as_text=True)
    assert "<strong>subject</strong>" in html
    assert 'name="accept_terms"' not in html
    assert "By signing in you agree" in html


def test_no_terms_section_without_terms(client):
    html = client.get("/login").get_data(as_text=True)
    assert "Terms of use" not in html


def test_required_terms_block_sign_in_until_ticked(client):
    """C1 still holds: a wrong password with or without the box gets the generic failure."""
    user = factories.portal_user(email="pat@example.com")
    set_terms()
    html = client.get("/login").get_data(as_text=True)
    assert 'name="accept_terms"' in html

    wrong = client.post("/login", data={"email": "pat@example.com", "password": "nope nope"})
    assert wrong.status_code == 422
    assert "do not match" in wrong.get_data(as_text=True)

    unticked = client.post("/login", data={"email": user.email, "password": factories.PASSWORD})
    assert unticked.status_code == 422
    body = unticked.get_data(as_text=True)
    assert 'id="accept_terms-error"' in body and "Tick the box" in body
    assert LoginSession.select().count() == 0
    assert TermsAcceptance.select().count() == 0

    ok = client.post(
        "/login",
        data={"email": user.email, "password": factories.PASSWORD, "accept_terms": "y"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert ok.status_code == 303
    acceptance = TermsAcceptance.get()
    version = settings.get("login_terms_version")
    assert (acceptance.user_id, acceptance.version, acceptance.ip) == (
        user.id,
        version,
        "198.51.100.7",
    )
    assert acceptance.accepted_at is not None
    assert PortalUser.get_by_id(user.id).terms_version == version
    assert AuditLog.get(AuditLog.action == "access.terms_accepted").ip == "198.51.100.7"


def test_unticked_box_answers_the_form_fragment_to_htmx(client):
    user = factories.portal_user()
    set_terms()
    response = client.post(
        "/login", data={"email": user.email, "password": factories.PASSWORD}, headers=HX
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "<html" not in body and "Tick the box" in body


def test_accepted_version_is_not_asked_again_but_a_new_version_is(app):
    user = factories.portal_user()
    set_terms()
    first = app.test_client()
    data = {"email": user.email, "password": factories.PASSWORD, "accept_terms": "y"}
    assert first.post("/login", data=data).status_code == 303

    again = app.test_client()
    assert login(again, user.email).status_code == 303  # same version: no box needed

    set_terms("New terms, version two.")
    later = app.test_client()
    assert login(later, user.email).status_code == 422
    assert later.post("/login", data=data).status_code == 303
    versions = [a.version for a in TermsAcceptance.select().order_by(TermsAcceptance.id)]
    assert versions == [1, 2]


def test_staff_sign_in_never_asks_for_customer_terms(client):
    staff = factories.staff()
    set_terms()
    response = client.post(
        "/staff/login", data={"email": staff.email, "password": factories.PASSWORD}
    )
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("switch", "label"),
    [
        ("quick_pay_enabled", "Pay an invoice without signing in"),
        ("self_registration", "Register with an invoice"),
        ("request_access", "Request access"),
    ],
)
def test_sign_in_links_follow_their_switches(client, switch, label):
    on = client.get("/login").get_data(as_text=True)
    assert label in on
    settings.save({switch: False})
    off = client.get("/login").get_data(as_text=True)
    assert label not in off
    assert "Forgot password?" in off


# --- the service API the back office calls -------------------------------------------------

import re  # noqa: E402

from portal.models import AccessRequest, Contact, OutboxMessage  # noqa: E402
from portal.services import access, outbox  # noqa: E402


def delivered(mailbox, count):
    """Services called outside a request leave their emails queued: send them, then read."""
    outbox.deliver_due()
    return mailbox.wait_for(count)


def link_path(message) -> str:
    body = message.get_body(("plain",)).get_content()
    return "/" + re.search(r"http://\S+", body).group(0).split("://", 1)[1].split("/", 1)[1]


@pytest.fixture
def staff_user(app):
    return factories.staff(admin=True)


def test_invite_then_accept_sets_password_and_signs_in(client, staff_user, mailbox):
    customer = factories.customer(name="Acme")
    plant = factories.site(customer, name="Plant 1")
    contact = Contact.create(customer=customer, email="kim@acme.example", first_name="Kim")
    user = access.invite(contact, ["invoices", "cases"], [plant.id], staff_user)
    assert (user.status, user.role_set, user.site_ids) == (
        "invited",
        {"invoices", "cases"},
        [plant.id],
    )
    assert user.invited_at is not None
    (message,) = delivered(mailbox, 1)
    assert message["To"] == "kim@acme.example"
    landed = client.get(link_path(message))
    assert landed.headers["Location"] == "/invitation"
    page = client.get("/invitation").get_data(as_text=True)
    assert "kim@acme.example" in page and "Acme" in page
    pw = "copper kettle morning"
    done = client.post("/invitation", data={"password": pw, "confirm": pw})
    assert (done.status_code, done.headers["Location"]) == (303, "/")
    assert PortalUser.get_by_id(user.id).status == "active"
    assert "Welcome, Kim" in client.get("/").get_data(as_text=True)
    entry = AuditLog.get(AuditLog.action == "access.invited")
    assert entry.actor_kind == "staff" and entry.actor_id == staff_user.id


def test_invitation_acceptance_asks_for_required_terms(client, staff_user, mailbox):
    contact = Contact.create(customer=factories.customer(), email="t@example.com")
    access.invite(contact, ["invoices"], None, staff_user)
    set_terms()
    client.get(link_path(delivered(mailbox, 1)[0]))
    pw = "copper kettle morning"
    refused = client.post("/invitation", data={"password": pw, "confirm": pw})
    assert refused.status_code == 422 and "Tick the box" in refused.get_data(as_text=True)
    assert (
        client.post(
            "/invitation", data={"password": pw, "confirm": pw, "accept_terms": "y"}
        ).status_code
        == 303
    )
    assert TermsAcceptance.select().count() == 1


def test_resend_kills_the_older_link(client, staff_user, mailbox):
    contact = Contact.create(customer=factories.customer(), email="r@example.com")
    user = access.invite(contact, ["invoices"], None, staff_user)
    old = link_path(delivered(mailbox, 1)[0])
    access.resend_invitation(user, staff_user)
    new = link_path(delivered(mailbox, 2)[1])
    client.get(old)
    assert client.get("/invitation").status_code == 400
    client.get(new)
    assert client.get("/invitation").status_code == 200


def test_deactivate_ends_sessions_and_revokes_links(app, staff_user, mailbox):
    """D5: disabling a login ends every session."""
    user = factories.portal_user()
    browser = app.test_client()
    login(browser, user.email)
    assert b"Sign out" in browser.get("/").data
    access.deactivate(user, staff_user)
    assert b"Sign out" not in browser.get("/").data
    assert login(app.test_client(), user.email).status_code == 422
    access.reactivate(user, staff_user)
    assert PortalUser.get_by_id(user.id).status == "active"
    assert login(app.test_client(), user.email).status_code == 303


def test_reactivating_a_login_without_password_invites_again(staff_user, mailbox):
    contact = Contact.create(customer=factories.customer(), email="n@example.com")
    user = access.invite(contact, ["invoices"], None, staff_user)
    access.deactivate(user, staff_user)
    access.reactivate(user, staff_user)
    assert PortalUser.get_by_id(user.id).status == "invited"
    assert len(delivered(mailbox, 2)) == 2


def test_set_access_narrowing_ends_sessions(app, staff_user):
    customer = factories.customer()
    plant = factories.site(customer)
    user = factories.portal_user(customer)
    browser = app.test_client()
    login(browser, user.email)
    access.set_access(user, ["invoices", "statements"], None, staff_user)  # fewer roles
    assert b"Sign out" not in browser.get("/").data
    login(browser, user.email)
    access.set_access(user, ["invoices", "statements", "quotes"], None, staff_user)  # wider
    assert b"Sign out" in browser.get("/").data
    access.set_access(user, ["invoices"], [plant.id], staff_user)
    stored = PortalUser.get_by_id(user.id)
    assert (stored.role_set, stored.site_ids) == ({"invoices"}, [plant.id])
    change = AuditLog.select().where(AuditLog.action == "access.changed").order_by(AuditLog.id)
    assert change.count() == 3


def test_set_access_refuses_unknown_roles_and_other_companies_sites(staff_user):
    user = factories.portal_user()
    other_site = factories.site(factories.customer())
    with pytest.raises(access.AccessProblem) as problem:
        access.set_access(user, ["invoices", "superuser"], None, staff_user)
    assert problem.value.field == "roles"
    with pytest.raises(access.AccessProblem) as problem:
        access.set_access(user, ["invoices"], [other_site.id], staff_user)
    assert problem.value.field == "sites"


def test_company_admin_acts_only_within_own_company_and_roles(app):
    customer = factories.customer()
    admin = factories.portal_user(customer, roles="invoices,company_admin")
    colleague = factories.portal_user(customer, roles="invoices")
    stranger = factories.portal_user(factories.customer(), roles="invoices")
    with pytest.raises(access.AccessProblem):
        access.set_access(colleague, ["invoices", "quotes"], None, admin)  # not their own role
    buyer = factories.portal_user(customer, roles="invoices,quotes")
    access.set_access(buyer, ["quotes"], None, admin)  # may keep a role they cannot grant
    assert PortalUser.get_by_id(buyer.id).role_set == {"quotes"}
    with pytest.raises(access.NotAllowed):
        access.deactivate(stranger, admin)
    with pytest.raises(access.NotAllowed):
        access.deactivate(admin, admin)  # not themselves
    plain = factories.portal_user(customer, roles="invoices")
    with pytest.raises(access.NotAllowed):
        access.deactivate(colleague, plain)
    access.deactivate(colleague, admin)
    assert PortalUser.get_by_id(colleague.id).status == "disabled"
    assert PortalUser.get_by_id(stranger.id).status == "active"


def test_pending_registration_approve_and_reject(staff_user, mailbox):
    customer = factories.customer()
    admin = factories.portal_user(customer)
    pending = factories.portal_user(customer, status="pending", password=None)
    rejected = factories.portal_user(customer, status="pending", password=None)
    access.approve_registration(pending, admin)
    assert PortalUser.get_by_id(pending.id).status == "invited"
    access.reject_registration(rejected, staff_user)
    assert PortalUser.get_by_id(rejected.id).status == "disabled"
    messages = delivered(mailbox, 2)
    assert "/invitation/" in link_path(messages[0])
    assert "cannot give you a login" in messages[1].get_body(("plain",)).get_content()
    with pytest.raises(access.AccessProblem):
        access.approve_registration(PortalUser.get_by_id(pending.id), admin)


def test_auto_invite_on_contact_created(staff_user, mailbox):
    auto = factories.customer(auto_invite=True)
    manual = factories.customer()
    contact = Contact.create(customer=auto, email="auto@example.com")
    user = access.on_contact_created(contact, staff_user)
    assert user.status == "invited" and user.role_set == set(settings.get("default_roles"))
    assert access.on_contact_created(contact, staff_user) is None  # already has a login
    other = Contact.create(customer=manual, email="manual@example.com")
    assert access.on_contact_created(other, staff_user) is None
    no_email = Contact.create(customer=auto, email=None)
    assert access.on_contact_created(no_email, staff_user) is None
    assert len(delivered(mailbox, 1)) == 1


# --- request access ---------------------------------------------------------------------------


REQUEST = {
    "name": "Dana Smith",
    "company": "Beta Foods",
    "email": "Dana@Beta.example",
    "phone": "555-0101",
    "account_number": "c00042",
    "message": "I pay the invoices.",
}


def test_request_access_goes_to_the_queue(client):
    assert client.get("/request-access/").status_code == 200
    response = client.post("/request-access/", data=REQUEST)
    assert (response.status_code, response.headers["Location"]) == (303, "/request-access/sent")
    row = AccessRequest.get()
    assert (row.email, row.account_number, row.status) == ("dana@beta.example", "C00042", "pending")
    assert "Thank you" in client.get("/request-access/sent").get_data(as_text=True)


def test_request_access_is_404_when_switched_off(client):
    settings.save({"request_access": False})
    assert client.get("/request-access/").status_code == 404


def test_request_access_is_throttled_per_address(client):
    for _ in range(8):
        client.post("/request-access/", data=REQUEST)
    assert AccessRequest.select().count() == 5


def test_approve_request_creates_the_contact_and_invites(client, staff_user, mailbox):
    customer = factories.customer(account_number="C00042")
    client.post("/request-access/", data=REQUEST)
    mailbox.clear()  # the acknowledgement of the request
    user = access.approve_request(AccessRequest.get(), staff_user)
    assert user.contact.customer_id == customer.id
    assert (user.contact.first_name, user.contact.last_name) == ("Dana", "Smith")
    assert AccessRequest.get().status == "approved"
    (message,) = delivered(mailbox, 1)
    assert message["To"] == "dana@beta.example" and "/invitation/" in link_path(message)
    with pytest.raises(access.AccessProblem):
        access.approve_request(AccessRequest.get(), staff_user)


def test_approve_request_without_a_customer_asks_for_one(client, staff_user, mailbox):
    client.post("/request-access/", data=dict(REQUEST, account_number=""))
    with pytest.raises(access.AccessProblem) as problem:
        access.approve_request(AccessRequest.get(), staff_user)
    assert problem.value.field == "customer"
    assert Contact.select().count() == 0
    customer = factories.customer()
    user = access.approve_request(AccessRequest.get(), staff_user, customer=customer)
    assert user.contact.customer_id == customer.id


def test_reject_request_sends_a_polite_email(client, staff_user, mailbox):
    client.post("/request-access/", data=REQUEST)
    mailbox.clear()  # the acknowledgement of the request
    access.reject_request(AccessRequest.get(), staff_user, note="Please ask your manager.")
    assert AccessRequest.get().status == "rejected"
    (message,) = delivered(mailbox, 1)
    body = message.get_body(("plain",)).get_content()
    assert "Please ask your manager." in body and "Dana Smith" in body
    assert OutboxMessage.select().order_by(OutboxMessage.id.desc()).get().kind == "access_rejected"


# --- CSRF, secrets in the audit log ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/login",
        "/register/",
        "/request-access/",
        "/password/forgot",
        "/reset",
        "/invitation",
        "/register/confirm",
        "/account/profile",
        "/account/password",
        "/company/users/new",
    ],
)
def test_access_forms_refuse_posts_without_a_csrf_token(make_app, url):
    """F1: every access form, guest or signed in, needs the token."""
    from portal.db import db

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.connect(reuse_if_open=True)
        user = factories.portal_user()
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        signed = client.post(
            "/login",
            data={"email": user.email, "password": factories.PASSWORD, "csrf_token": token},
        )
        assert signed.status_code == 303
        response = client.post(url, data={"email": "x@example.com"})
        assert response.status_code == 400, url
        db.close()


def test_codes_passwords_and_links_never_reach_the_audit_log(client, mailbox):
    """K3: the audit trail names the invoice and the email, never the code, password or link."""
    customer = factories.customer(allow_self_registration=True)
    invoice, code = factories.invoice(customer)
    client.post(
        "/register/",
        data={
            "invoice_number": invoice.number,
            "code": code,
            "name": "Al Bee",
            "email": "al@example.com",
        },
    )
    link = link_path(mailbox.wait_for(1)[0])
    client.get(link)
    pw = "quiet meadow dawn"
    client.post("/register/confirm", data={"password": pw, "confirm": pw})
    client.post("/password/forgot", data={"email": "al@example.com"})
    details = " ".join(f"{a.action} {a.detail}" for a in AuditLog.select())
    token = link.rsplit("/", 1)[1]
    for secret in (code, token, pw):
        assert secret not in details
    assert "access.registered" in details and invoice.number in details
