"""C6: settings and staff-login changes need a recently typed password."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from portal.models import Setting, StaffUser
from portal.services import settings

from . import factories
from .conftest import HX, staff_login
from .test_staff_settings import URL, form_data

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def admin(client, clock):
    user = factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    return user


def bulletin() -> str:
    row = Setting.get_or_none(Setting.key == "bulletin_message")
    return row.value if row else ""


def test_a_fresh_sign_in_may_change_settings(client, admin):
    """Within FRESH_LOGIN_TIMEOUT of typing the password, a settings change goes through."""
    response = client.post(URL, data=form_data(bulletin_message="Closed Friday"))
    assert response.status_code == 303
    assert "Closed Friday" in bulletin()


def test_a_stale_session_is_sent_to_confirm_and_nothing_changes(client, admin, clock):
    """C6: 31 minutes later the same POST changes nothing and asks for the password,
    coming back to the page the form was on; a wrong password is 422 and still stale."""
    clock.shift(timedelta(minutes=31))
    response = client.post(
        URL,
        data=form_data(bulletin_message="Closed Friday"),
        headers={"Referer": "http://localhost/staff/settings/"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/confirm?next=/staff/settings/"
    assert bulletin() == ""
    assert settings.DEFAULTS["bulletin_message"] == ""

    page = client.get("/staff/confirm?next=/staff/settings/")
    assert "Confirm your password to make this change." in page.get_data(as_text=True)
    wrong = client.post("/staff/confirm?next=/staff/settings/", data={"password": "nope"})
    assert wrong.status_code == 422
    assert "do not match" in wrong.get_data(as_text=True)
    assert client.post(URL, data=form_data(bulletin_message="x")).status_code == 303
    assert bulletin() == ""

    right = client.post(
        "/staff/confirm?next=/staff/settings/", data={"password": factories.PASSWORD}
    )
    assert right.status_code == 303
    assert right.headers["Location"] == "/staff/settings/"
    assert client.post(URL, data=form_data(bulletin_message="Closed Friday")).status_code == 303
    assert "Closed Friday" in bulletin()


def test_stale_htmx_posts_get_a_full_page_redirect(client, admin, clock):
    """An htmx save from a stale session is sent to the confirm page with HX-Redirect."""
    clock.shift(timedelta(hours=1))
    response = client.post(URL, data=form_data(bulletin_message="x"), headers=HX)
    assert response.headers["HX-Redirect"].startswith("/staff/confirm?next=")
    assert bulletin() == ""


def test_staff_login_changes_need_a_fresh_password_too(client, admin, clock):
    """Creating a staff login is refused from a stale session (no row written)."""
    clock.shift(timedelta(minutes=45))
    data = {
        "email": "new@example.com",
        "name": "New Person",
        "role": "agent",
        "password": "a long enough password",
        "confirm": "a long enough password",
    }
    response = client.post("/staff/users/new", data=data)
    assert response.headers["Location"].startswith("/staff/confirm")
    assert not StaffUser.select().where(StaffUser.email == "new@example.com").exists()


def test_the_confirm_page_only_returns_to_this_site(client, admin, clock):
    """`next` is checked: another host falls back to the staff home."""
    clock.shift(timedelta(minutes=45))
    response = client.post(
        "/staff/confirm?next=https://evil.example/", data={"password": factories.PASSWORD}
    )
    assert response.headers["Location"] == "/staff/"
