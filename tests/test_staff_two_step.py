"""C5: staff two-step sign-in with an authenticator app (TOTP), under the default `required`."""

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine

from portal.models import AuditLog, LoginSession, StaffUser
from portal.security import seal, unseal
from portal.services import two_step

from . import factories
from .conftest import staff_login

START = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def build(build_app):
    return lambda mode="required": build_app(STAFF_MFA=mode)


@pytest.fixture
def app(build):
    return build()


def enrolled(email="sam@example.com", admin=False):
    user = factories.staff(email=email, admin=admin)
    StaffUser.update(totp_secret=seal(SECRET)).where(StaffUser.id == user.id).execute()
    return StaffUser.get_by_id(user.id)


def code(secret=SECRET, steps_from_now=0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(datetime.now(UTC)) + steps_from_now)


def test_the_password_alone_does_not_open_the_back_office(client, clock):
    enrolled()
    response = staff_login(client, "sam@example.com")
    assert (response.status_code, response.headers["Location"]) == (303, "/staff/login/code")
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    assert LoginSession.select().count() == 0  # no session until the code is right
    page = client.get("/staff/login/code").get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in page and 'inputmode="numeric"' in page
    response = client.post("/staff/login/code", data={"code": code()})
    assert (response.status_code, response.headers["Location"]) == (303, "/staff/")
    assert client.get("/staff/").status_code == 200


def test_a_wrong_code_is_refused_next_to_the_field_and_then_throttled(client, clock):
    user = enrolled()
    staff_login(client, "sam@example.com")
    wrong = f"{(int(code()) + 1) % 1_000_000:06d}"
    response = client.post("/staff/login/code", data={"code": wrong})
    assert response.status_code == 422
    assert "That code did not match" in response.get_data(as_text=True)
    response = client.post("/staff/login/code", data={"code": "12ab"})
    assert response.status_code == 422 and "The code is six digits." in response.get_data(
        as_text=True
    )
    for _ in range(4):
        response = client.post("/staff/login/code", data={"code": wrong})
    assert response.status_code == 429
    assert "Too many wrong codes" in response.get_data(as_text=True)
    # Locked: even the right code waits (the throttle is per login, in the database).
    assert client.post("/staff/login/code", data={"code": code()}).status_code == 429
    assert AuditLog.select().where(AuditLog.action == "auth.code_failed").count() == 5
    assert StaffUser.get_by_id(user.id).totp_last_step is None


def test_a_code_works_once_and_a_neighbouring_step_is_accepted(client, app, clock):
    enrolled()
    staff_login(client, "sam@example.com")
    used = code()
    assert client.post("/staff/login/code", data={"code": used}).status_code == 303
    other = app.test_client()
    staff_login(other, "sam@example.com")
    response = other.post("/staff/login/code", data={"code": used})
    assert response.status_code == 422  # replayed
    # Clock drift: the next step's code (30 s ahead) still signs in, once.
    assert other.post("/staff/login/code", data={"code": code(steps_from_now=1)}).status_code == 303
    third = app.test_client()
    staff_login(third, "sam@example.com")
    assert (
        third.post("/staff/login/code", data={"code": code(steps_from_now=-1)}).status_code == 422
    )


def test_the_code_step_expires_after_five_minutes(client, clock):
    enrolled()
    staff_login(client, "sam@example.com")
    clock.shift(timedelta(minutes=6))
    response = client.get("/staff/login/code")
    assert response.headers["Location"] == "/staff/login"
    assert "took too long" in client.get("/staff/login").get_data(as_text=True)
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"


def test_without_an_app_the_first_sign_in_sets_one_up(client, clock):
    user = factories.staff(email="new@example.com")
    response = staff_login(client, "new@example.com")
    assert response.headers["Location"] == "/staff/login/setup"
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    page = client.get("/staff/login/setup").get_data(as_text=True)
    key = re.search(r'<code class="secret-key">([A-Z2-7 ]+)</code>', page).group(1)
    secret = key.replace(" ", "")
    assert len(secret) == 32  # 160 bits
    assert "<svg" in page and 'aria-label="QR code of your two-step sign-in key"' in page
    # The same key on a reload (kept sealed in the session until it is proven).
    assert key in client.get("/staff/login/setup").get_data(as_text=True)
    wrong = f"{(int(code(secret)) + 1) % 1_000_000:06d}"
    assert client.post("/staff/login/setup", data={"code": wrong}).status_code == 422
    assert StaffUser.get_by_id(user.id).totp_secret is None
    response = client.post("/staff/login/setup", data={"code": code(secret, 1)})
    assert (response.status_code, response.headers["Location"]) == (303, "/staff/")
    stored = StaffUser.get_by_id(user.id)
    assert stored.totp_secret and secret not in stored.totp_secret  # sealed, not plain
    assert AuditLog.get(AuditLog.action == "staff.two_step_enabled").object_id == str(user.id)
    # From now on the sign-in asks for the code.
    other = client.application.test_client()
    assert staff_login(other, "new@example.com").headers["Location"] == "/staff/login/code"


def test_a_session_without_an_app_ends_when_two_step_is_required(build, clock):
    """Signed in while two-step was optional; once required, the next request signs out."""
    loose = build("optional")
    factories.staff(email="old@example.com")
    client = loose.test_client()
    assert staff_login(client, "old@example.com").headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    loose.config["STAFF_MFA"] = "required"
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    assert LoginSession.select().where(LoginSession.revoked_at.is_null()).count() == 0


def test_optional_and_off(build, clock):
    app = build("optional")
    enrolled("app@example.com")
    factories.staff(email="plain@example.com")
    assert staff_login(app.test_client(), "plain@example.com").headers["Location"] == "/staff/"
    assert (
        staff_login(app.test_client(), "app@example.com").headers["Location"] == "/staff/login/code"
    )
    app.config["STAFF_MFA"] = "off"
    assert staff_login(app.test_client(), "app@example.com").headers["Location"] == "/staff/"


def test_an_admin_resets_a_lost_phone_and_the_cli_can_too(client, app, clock):
    admin = enrolled("boss@example.com", admin=True)
    agent = enrolled("agent@example.com")
    agent_client = app.test_client()
    staff_login(agent_client, "agent@example.com")
    agent_client.post("/staff/login/code", data={"code": code()})
    assert agent_client.get("/staff/").status_code == 200
    staff_login(client, "boss@example.com")
    client.post("/staff/login/code", data={"code": code(steps_from_now=1)})
    page = client.get(f"/staff/users/{agent.id}").get_data(as_text=True)
    assert "Reset (lost phone)" in page
    response = client.post(f"/staff/users/{agent.id}/two-step/reset")
    assert response.status_code == 303
    assert StaffUser.get_by_id(agent.id).totp_secret is None
    assert agent_client.get("/staff/").headers["Location"].startswith("/staff/login")
    entry = AuditLog.get(AuditLog.action == "staff.two_step_reset")
    assert (entry.object_id, entry.actor_id) == (str(agent.id), admin.id)
    # The command line, for the admin who lost their own phone.
    result = app.test_cli_runner().invoke(args=["reset-staff-two-step", "boss@example.com"])
    assert result.exit_code == 0, result.output
    assert StaffUser.get_by_id(admin.id).totp_secret is None
    result = app.test_cli_runner().invoke(args=["reset-staff-two-step", "nobody@example.com"])
    assert result.exit_code != 0 and "has no back-office login" in result.output


def test_a_fresh_install_has_no_staff_login(app):
    """C5: no default or shared admin account exists after install (only `create-staff`)."""
    assert StaffUser.select().count() == 0


def test_a_password_change_or_deactivation_voids_the_half_finished_sign_in(client, clock):
    from portal.security import new_stamp

    user = enrolled()
    staff_login(client, "sam@example.com")
    app = client.application
    session = app.session_interface.get_signing_serializer(app).loads(
        client.get_cookie("doorstep_session").value
    )
    assert session["_two_step"]["uid"] == user.id
    assert user.auth_stamp not in str(session)  # the readable cookie keeps only a digest
    StaffUser.update(auth_stamp=new_stamp()).where(StaffUser.id == user.id).execute()
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"
    staff_login(client, "sam@example.com")
    StaffUser.update(active=False).where(StaffUser.id == user.id).execute()
    response = client.post("/staff/login/code", data={"code": code()})
    assert response.headers["Location"] == "/staff/login"
    assert LoginSession.select().count() == 0


def test_a_session_signed_in_without_the_code_ends_when_two_step_becomes_required(build, clock):
    """Enrolled staff who signed in while two-step was off must type the code once it is
    required: the session, not the account, must have passed the code."""
    app = build("off")
    enrolled()
    client = app.test_client()
    assert staff_login(client, "sam@example.com").headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    app.config["STAFF_MFA"] = "required"
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    assert staff_login(client, "sam@example.com").headers["Location"] == "/staff/login/code"
    assert client.post("/staff/login/code", data={"code": code()}).status_code == 303
    assert client.get("/staff/").status_code == 200


def test_a_finished_set_up_cannot_be_replaced_by_a_second_one(client, app, clock):
    """Two set-up pages open at once: the first code proven wins; the other cannot swap
    in its own key afterwards."""
    factories.staff(email="new@example.com")
    first, second = app.test_client(), app.test_client()
    keys = []
    for browser in (first, second):
        staff_login(browser, "new@example.com")
        page = browser.get("/staff/login/setup").get_data(as_text=True)
        keys.append(re.search(r'class="secret-key">([A-Z2-7 ]+)<', page).group(1).replace(" ", ""))
    assert keys[0] != keys[1]
    assert first.post("/staff/login/setup", data={"code": code(keys[0])}).status_code == 303
    response = second.post("/staff/login/setup", data={"code": code(keys[1])})
    assert response.headers["Location"] == "/staff/login/code"
    # The service holds the line too, for two set-ups racing past the page's check.
    stored = StaffUser.get(StaffUser.email == "new@example.com")
    assert not two_step.check_code(stored, code(keys[1], 1), secret=keys[1]).ok
    assert unseal(StaffUser.get_by_id(stored.id).totp_secret) == keys[0]
