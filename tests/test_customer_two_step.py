"""Two-step sign-in for customers (issue 16, the peer gap; checklist C5, C2, B5, B8, D5, H1,
K2, K3): an authenticator app (the staff implementation), passkeys (WebAuthn) as the better
second step and as a sign-in without a password, recovery codes shown once and used once,
a company admin's rule, and a staff reset (audited, the customer emailed). Sign-in, reset,
registration and invitation flows all respect it.

Passkeys are driven by a small software authenticator (EC P-256, "none" attestation) that
signs exactly what a browser's authenticator would; the browser test
(tests/browser/test_passkey_flow.py) does the same with Chromium's virtual authenticator.
"""

import base64
import hashlib
import json
import os
import re
import struct
import time

import cbor2
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from portal.models import AuditLog, LoginSession, PortalUser
from portal.models_two_step import LoginAuthenticator, Passkey, RecoveryCode
from portal.services import access

from . import factories
from .conftest import login

PW = factories.PASSWORD
JSON_POST = {"Content-Type": "application/json"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A passkey authenticator in software: one resident P-256 credential."""

    def __init__(self, origin="http://localhost", rp_id="localhost"):
        self.origin, self.rp_id = origin, rp_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.user_handle = None
        self.counter = 0

    def _auth_data(self, flags: int, attested: bytes = b"") -> bytes:
        self.counter += 1
        rp_hash = hashlib.sha256(self.rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.counter) + attested

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict) -> dict:
        self.user_handle = options["user"]["id"]
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
        auth_data = self._auth_data(0x45, attested + cose)  # user present + verified + data
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(self._client_data("webauthn.create", options["challenge"])),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(self, options: dict, verified: bool = True) -> dict:
        auth_data = self._auth_data(0x05 if verified else 0x01)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": self.user_handle,
            },
            "clientExtensionResults": {},
        }


def post_json(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), headers=JSON_POST)


def add_passkey(client, authenticator, name="Laptop"):
    options = post_json(client, "/account/passkeys/options").get_json()
    answer = post_json(
        client, "/account/passkeys", {"credential": authenticator.create(options), "name": name}
    )
    assert answer.status_code == 200, answer.get_json()
    return answer


def enable_app(client) -> pyotp.TOTP:
    """Set up the authenticator app from My account; returns the app's generator."""
    page = client.get("/account/two-step/app").get_data(as_text=True)
    key = re.search(r'class="secret-key">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    totp = pyotp.TOTP(key)
    done = client.post("/account/two-step/app", data={"code": totp.now()})
    assert done.status_code == 303, done.get_data(as_text=True)
    return totp


def next_code(totp: pyotp.TOTP) -> str:
    """A code of the next time step (each code works once)."""
    return totp.at(time.time() + 30)


def signed_in(client) -> bool:
    return client.get("/account/").status_code == 200


def sign_out(client):
    client.post("/logout")
    assert not signed_in(client)


def new_codes(client) -> list[str]:
    page = client.post("/account/two-step/codes", data={"password": PW})
    assert page.status_code == 200
    return re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", page.get_data(as_text=True))


@pytest.fixture
def pat(client):
    user = factories.portal_user(email="pat@example.com", roles="invoices")
    assert login(client, "pat@example.com").status_code == 303
    return user


# --- the authenticator app ----------------------------------------------------------------


def test_c5_authenticator_app_is_the_second_step_and_each_code_works_once(client, pat):
    """C5: with the app on, the password alone does not sign in; the app's code does, once;
    a wrong code is refused and counted; the secret is stored sealed."""
    totp = enable_app(client)
    (row,) = LoginAuthenticator.select()
    assert totp.secret not in row.totp_secret
    sign_out(client)

    answer = login(client, "pat@example.com")
    assert (answer.status_code, answer.headers["Location"]) == (303, "/login/two-step")
    assert not signed_in(client)
    wrong = client.post("/login/two-step", data={"code": "000000"})
    assert wrong.status_code == 422 and "did not match" in wrong.get_data(as_text=True)
    code = next_code(totp)
    assert client.post("/login/two-step", data={"code": code}).status_code == 303
    assert signed_in(client)

    sign_out(client)
    login(client, "pat@example.com")
    replay = client.post("/login/two-step", data={"code": code})
    assert replay.status_code == 422
    assert not signed_in(client)
    assert AuditLog.select().where(AuditLog.action == "auth.code_failed").count() == 2


def test_c5_wrong_codes_are_throttled_per_login(client, pat):
    """C5/C2: five wrong codes pause that login's second step (429), whoever asks."""
    enable_app(client)
    sign_out(client)
    login(client, "pat@example.com")
    statuses = [
        client.post("/login/two-step", data={"code": "123456"}).status_code for _ in range(5)
    ]
    assert statuses == [422] * 4 + [429]


def test_c5_the_second_step_expires_and_needs_the_same_login(app, client, pat):
    """C5: the half-signed-in state lasts five minutes and ends with a password change."""
    totp = enable_app(client)
    sign_out(client)
    login(client, "pat@example.com")
    with app.app_context():
        access.change_password(PortalUser.get_by_id(pat.id), PW, "a brand new password")
    answer = client.post("/login/two-step", data={"code": next_code(totp)})
    assert (answer.status_code, answer.headers["Location"]) == (302, "/login")
    assert not signed_in(client)


# --- recovery codes -----------------------------------------------------------------------


def test_c5_recovery_codes_are_shown_once_stored_hashed_and_work_once(client, pat):
    """C5/K3: ten codes, shown on the page that made them and never again, stored only as
    keyed digests; each signs in once instead of the second step; new codes replace old."""
    enable_app(client)
    codes = new_codes(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = [row.code_hash for row in RecoveryCode.select()]
    assert len(stored) == 10 and not any(code in "".join(stored) for code in codes)
    assert codes[0] not in client.get("/account/").get_data(as_text=True)
    assert client.get("/account/two-step/codes").status_code == 405

    sign_out(client)
    login(client, "pat@example.com")
    answer = client.post("/login/two-step", data={"recovery_code": codes[0].upper()})
    assert answer.status_code == 303 and signed_in(client)
    assert "<strong>9</strong> unused recovery codes" in client.get("/account/").get_data(
        as_text=True
    )

    sign_out(client)
    login(client, "pat@example.com")
    again = client.post("/login/two-step", data={"recovery_code": codes[0]})
    assert again.status_code == 422 and not signed_in(client)

    assert client.post("/login/two-step", data={"recovery_code": codes[1]}).status_code == 303
    newer = new_codes(client)
    sign_out(client)
    login(client, "pat@example.com")
    assert client.post("/login/two-step", data={"recovery_code": codes[2]}).status_code == 422
    assert client.post("/login/two-step", data={"recovery_code": newer[0]}).status_code == 303


def test_recovery_codes_need_the_password_and_a_second_step(client, pat):
    """C5: making codes needs the password again, and a login without a second step has
    none to make."""
    assert client.post("/account/two-step/codes", data={"password": "wrong"}).status_code == 422
    assert client.post("/account/two-step/codes", data={"password": PW}).status_code == 404


# --- passkeys -----------------------------------------------------------------------------


def test_c5_passkey_is_a_second_step_and_signs_in_without_a_password(client, pat):
    """C5: a passkey added in My account becomes the second step after the password, and
    signs in on its own (the authenticator verified its user); its counter is kept."""
    key = SoftAuthenticator()
    add_passkey(client, key, name="Work laptop")
    (row,) = Passkey.select()
    assert row.name == "Work laptop" and row.user_id == pat.id
    sign_out(client)

    assert login(client, "pat@example.com").headers["Location"] == "/login/two-step"
    options = post_json(client, "/login/two-step/passkey/options").get_json()
    assert [c["id"] for c in options["allowCredentials"]] == [b64(key.credential_id)]
    answer = post_json(client, "/login/two-step/passkey", key.get(options))
    assert answer.get_json() == {"location": "/"} and signed_in(client)
    sign_out(client)

    options = post_json(client, "/login/passkey/options").get_json()
    assert options["userVerification"] == "required" and not options.get("allowCredentials")
    answer = post_json(client, "/login/passkey?next=/account/", key.get(options))
    assert answer.get_json() == {"location": "/account/"} and signed_in(client)
    assert Passkey.get().sign_count == key.counter and Passkey.get().last_used_at


def test_c5_passkey_refusals(client, pat):
    """C5: a passkey answer for another site, a replayed challenge, an unknown passkey and
    one without user verification (no password) are all refused."""
    key = SoftAuthenticator()
    add_passkey(client, key)
    sign_out(client)

    phished = SoftAuthenticator(origin="https://evil.example", rp_id="evil.example")
    phished.credential_id, phished.key, phished.user_handle = (
        key.credential_id,
        key.key,
        key.user_handle,
    )
    options = post_json(client, "/login/passkey/options").get_json()
    assert post_json(client, "/login/passkey", phished.get(options)).status_code == 422

    options = post_json(client, "/login/passkey/options").get_json()
    answer = key.get(options)
    assert post_json(client, "/login/passkey", answer).status_code == 200
    sign_out(client)
    assert post_json(client, "/login/passkey", answer).status_code == 422  # challenge used

    options = post_json(client, "/login/passkey/options").get_json()
    assert post_json(client, "/login/passkey", SoftAuthenticator().get(options)).status_code == 422

    options = post_json(client, "/login/passkey/options").get_json()
    unverified = key.get(options, verified=False)
    assert post_json(client, "/login/passkey", unverified).status_code == 422
    assert not signed_in(client)
    # The replay fails at its challenge, before any passkey is looked at.
    assert AuditLog.select().where(AuditLog.action == "auth.passkey_failed").count() == 3


def test_passkey_of_a_disabled_login_does_not_sign_in(client, pat):
    """C1/D5: a disabled login's passkey signs nobody in."""
    key = SoftAuthenticator()
    add_passkey(client, key)
    sign_out(client)
    PortalUser.update(status="disabled").where(PortalUser.id == pat.id).execute()
    options = post_json(client, "/login/passkey/options").get_json()
    assert post_json(client, "/login/passkey", key.get(options)).status_code == 422
    assert not signed_in(client)


def test_removing_a_passkey_needs_the_password(client, pat):
    key = SoftAuthenticator()
    add_passkey(client, key)
    removal = {"passkey": b64(key.credential_id), "password": "wrong"}
    assert client.post("/account/passkeys/remove", data=removal).status_code == 422
    removal["password"] = PW
    assert client.post("/account/passkeys/remove", data=removal).status_code == 303
    assert Passkey.select().count() == 0


# --- the company's rule -------------------------------------------------------------------


def test_c5_a_company_admin_requires_two_step_and_logins_set_it_up_at_next_sign_in(app, client):
    """C5: a company admin requires two-step sign-in; a colleague without it is sent to set
    it up after the password (not signed in until a code proves the app); other companies
    are untouched; a login may not remove its last second step while it is required."""
    acme = factories.customer(name="Acme")
    factories.portal_user(acme, email="admin@acme.example", roles="company_admin")
    factories.portal_user(acme, email="kim@acme.example", roles="invoices")
    factories.portal_user(email="other@example.com", roles="invoices")

    login(client, "kim@acme.example")
    assert client.post("/account/two-step/company", data={"required": "y"}).status_code == 403
    sign_out(client)

    login(client, "admin@acme.example")
    assert client.post("/account/two-step/company", data={"required": "y"}).status_code == 303
    entry = AuditLog.get(AuditLog.action == "company.two_step_required")
    assert entry.actor_kind == "portal"
    sign_out(client)

    answer = login(client, "kim@acme.example")
    assert answer.headers["Location"] == "/login/two-step/setup"
    assert not signed_in(client)
    page = client.get("/login/two-step/setup").get_data(as_text=True)
    key = re.search(r'class="secret-key">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    done = client.post("/login/two-step/setup", data={"code": pyotp.TOTP(key).now()})
    assert done.headers["Location"] == "/account/#sign-in-security" and signed_in(client)
    off = client.post("/account/two-step/app/off", data={"password": PW})
    assert off.status_code == 303 and LoginAuthenticator.select().count() == 1
    sign_out(client)

    other = app.test_client()
    assert login(other, "other@example.com").headers["Location"] == "/"


def test_c5_required_setup_with_a_passkey(client):
    """C5: the required set-up may add a passkey instead of an app, then signs in."""
    acme = factories.customer()
    admin = factories.portal_user(acme, email="admin@acme.example", roles="company_admin")
    login(client, admin.email)
    client.post("/account/two-step/company", data={"required": "y"})
    sign_out(client)
    login(client, admin.email)
    key = SoftAuthenticator()
    options = post_json(client, "/login/two-step/setup/passkey/options").get_json()
    answer = post_json(client, "/login/two-step/setup/passkey", {"credential": key.create(options)})
    assert answer.get_json() == {"location": "/account/#sign-in-security"}
    assert signed_in(client) and Passkey.select().count() == 1


def test_b5_invitation_respects_the_rule(client, staff_user):
    """B5/C5: accepting an invitation to a company that requires two-step sign-in sets the
    password, then sends the new login to set up its second step: not signed in before.
    (Registration takes the same path, views/password.py; a company with the rule has an
    admin, so a registration there is pending approval first, B4.)"""
    acme = factories.customer()
    admin = factories.portal_user(acme, email="admin@acme.example", roles="company_admin")
    login(client, admin.email)
    client.post("/account/two-step/company", data={"required": "y"})
    sign_out(client)

    from portal.models import Contact

    contact = Contact.create(customer=acme, email="kim@acme.example", first_name="Kim")
    user = access.invite(contact, ["invoices"], None, staff_user)
    client.get(access.make_link("invite", user).removeprefix("http://localhost"))
    pw = "copper kettle morning"
    done = client.post("/invitation", data={"password": pw, "confirm": pw})
    assert (done.status_code, done.headers["Location"]) == (303, "/login/two-step/setup")
    assert not signed_in(client)
    assert PortalUser.get_by_id(user.id).status == "active"


def test_b5_a_password_reset_does_not_bypass_the_second_step(client, pat, mailbox):
    """B5/B8/C5: after a reset through the emailed link, signing in still asks for the
    second step."""
    totp = enable_app(client)
    sign_out(client)
    client.post("/password/forgot", data={"email": "pat@example.com"})
    body = mailbox.wait_for(1)[-1].get_body(("plain",)).get_content()
    client.get(re.search(r"http://localhost(/reset/\S+)", body).group(1))
    new = "plum orchard sunrise"
    assert client.post("/reset", data={"password": new, "confirm": new}).status_code == 303
    assert not signed_in(client)
    assert login(client, "pat@example.com", new).headers["Location"] == "/login/two-step"
    assert not signed_in(client)
    assert client.post("/login/two-step", data={"code": next_code(totp)}).status_code == 303


# --- staff reset --------------------------------------------------------------------------


@pytest.fixture
def staff_user():
    return factories.staff(email="admin@office.example", admin=True)


def test_c5_k2_staff_reset_a_customer_two_step_audited_and_emailed(app, client, pat, mailbox):
    """C5/K2/D5: a staff admin resets a customer login's app, passkeys and recovery codes:
    its sessions end, the customer is emailed, and the audit log names who did it."""
    enable_app(client)
    add_passkey(client, SoftAuthenticator())
    new_codes(client)
    mailbox.clear()
    factories.staff(email="boss@office.example", admin=True)
    office = app.test_client()
    assert office.post(
        "/staff/login", data={"email": "boss@office.example", "password": PW}
    ).status_code in (302, 303)
    page = office.get("/staff/users/customer-two-step", query_string={"email": "PAT@example.com"})
    assert "Reset two-step sign-in" in page.get_data(as_text=True)
    done = office.post(f"/staff/users/customer-two-step/{pat.id}/reset")
    assert done.status_code == 303

    assert not signed_in(client)
    assert (LoginAuthenticator.select().count(), Passkey.select().count()) == (0, 0)
    assert RecoveryCode.select().count() == 0
    entry = AuditLog.get(AuditLog.action == "account.two_step_reset")
    assert entry.actor_kind == "staff" and entry.object_id == str(pat.id)
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@example.com" and "two-step" in message["Subject"]
    assert login(client, "pat@example.com").headers["Location"] == "/"


def test_staff_agents_cannot_reset_customer_two_step(app, pat):
    factories.staff(email="agent@office.example")
    office = app.test_client()
    office.post("/staff/login", data={"email": "agent@office.example", "password": PW})
    assert office.get("/staff/users/customer-two-step").status_code == 403
    assert office.post(f"/staff/users/customer-two-step/{pat.id}/reset").status_code == 403


# --- pages --------------------------------------------------------------------------------


def test_h1_passkey_script_is_a_static_file_and_boosted_visits_load_it(client, pat):
    """H1: the passkey pages load static/js/passkeys.js (no inline script, the CSP stays
    strict); a boosted visit becomes a full page load so the script runs."""
    page = client.get("/account/")
    body = page.get_data(as_text=True)
    assert "/static/js/passkeys.js" in body
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)
    assert (
        "'unsafe-inline'"
        not in page.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    )
    boosted = client.get("/account/", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert boosted.headers["HX-Redirect"] == "/account/"
    assert LoginSession.select().count() == 1


def test_migration_0021_builds_exactly_the_two_step_models(app):
    """STYLE 5: the tables migration 0021 builds match portal/models_two_step.py, on SQLite
    and on PostgreSQL (the models live beside models.py, outside ALL_MODELS)."""
    from playhouse.schema_diff import diff_models

    from portal.db import db
    from portal.models_two_step import ALL_TWO_STEP_MODELS

    diff = diff_models(db.obj, ALL_TWO_STEP_MODELS)
    assert not diff, diff


def test_a_second_step_reset_half_way_goes_on_without_it(client, pat, staff_user):
    """C5: when staff reset the second step while a sign-in waits for it, the code page
    does not strand the person: the password was proven and no step is left to ask."""
    from portal.services import two_step

    enable_app(client)
    sign_out(client)
    login(client, "pat@example.com")
    two_step.reset(PortalUser.get_by_id(pat.id), staff_user)
    answer = client.get("/login/two-step")
    assert (answer.status_code, answer.headers["Location"]) == (303, "/")
    assert signed_in(client)
