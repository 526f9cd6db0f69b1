"""Forgotten passwords and links that set passwords (checklist B5-B8, C3)."""

import re
from datetime import timedelta

import pytest
import time_machine

from portal import tokens
from portal.db import utcnow
from portal.models import AuditLog, OutboxMessage, PortalUser
from portal.services import access

from . import factories
from .conftest import HX, login

NEW = "plum orchard sunrise"
SENT = "If that address belongs to a login, we have emailed it a link"


def link_in(message) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"http://\S+", body).group(0)


def path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def ask_reset(client, email, **kw):
    return client.post("/password/forgot", data={"email": email}, **kw)


def test_forgot_page_and_generic_answer(client):
    assert client.get("/password/forgot").status_code == 200
    user = factories.portal_user()
    for email in (user.email, "nobody@example.com"):
        response = ask_reset(client, email)
        assert (response.status_code, response.headers["Location"]) == (303, "/password/sent")
    assert SENT in client.get("/password/sent").get_data(as_text=True)


def test_reset_flow_changes_password_ends_sessions_and_confirms(app, client, mailbox):
    """B8: not signed in after the reset, other sessions end, confirmation email sent."""
    user = factories.portal_user(email="lee@example.com")
    other_browser = app.test_client()
    assert login(other_browser, user.email).status_code == 303
    assert other_browser.get("/").status_code == 200 and b"Sign out" in other_browser.get("/").data

    ask_reset(client, "LEE@example.com")
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "lee@example.com"
    link = link_in(message)
    assert link.startswith("http://localhost/reset/")

    landed = client.get(path(link))
    assert (landed.status_code, landed.headers["Location"]) == (303, "/reset")  # B7
    assert client.get("/reset").status_code == 200
    done = client.post("/reset", data={"password": NEW, "confirm": NEW})
    assert (done.status_code, done.headers["Location"]) == (303, "/login")

    assert b"Sign out" not in client.get("/").data  # not signed in by the reset
    assert other_browser.get("/").status_code == 200
    assert b"Sign out" not in other_browser.get("/").data  # the old session is gone
    messages = mailbox.wait_for(2)
    assert "was changed" in messages[1]["Subject"]
    assert login(client, user.email, NEW).status_code == 303
    assert AuditLog.select().where(AuditLog.action == "access.password_set_reset").count() == 1


def _reset_link(client, mailbox, user) -> str:
    ask_reset(client, user.email)
    return path(link_in(mailbox.wait_for(1)[-1]))


def test_reset_link_works_once(app, client, mailbox):
    """B5 (2)."""
    user = factories.portal_user()
    link = _reset_link(client, mailbox, user)
    client.get(link)
    assert client.post("/reset", data={"password": NEW, "confirm": NEW}).status_code == 303
    second = app.test_client()
    second.get(link)
    response = second.post("/reset", data={"password": NEW + "x", "confirm": NEW + "x"})
    assert response.status_code == 400
    assert "invalid or expired" in response.get_data(as_text=True)


def test_reset_link_expires(client, mailbox):
    """B5 (3)."""
    user = factories.portal_user()
    link = _reset_link(client, mailbox, user)
    with time_machine.travel(utcnow() + timedelta(hours=1, minutes=1)):
        client.get(link)
        assert client.get("/reset").status_code == 400


def test_tampered_link_is_refused(client, mailbox):
    """B5 (4)."""
    user = factories.portal_user()
    link = _reset_link(client, mailbox, user)
    flipped = link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]
    client.get(flipped)
    assert client.get("/reset").status_code == 400


def test_reset_token_is_refused_as_an_invitation(client, mailbox):
    """B5 (1): tokens are purpose-bound."""
    user = factories.portal_user(status="invited", password=None)
    token = tokens.make("reset", {"u": user.id, "s": tokens.state_digest(user.auth_stamp)})
    client.get(f"/invitation/{token}")
    assert client.get("/invitation").status_code == 400
    assert access.read_link("invite", token) is None


def test_new_reset_request_does_not_kill_old_link_but_password_change_does(client, mailbox):
    user = factories.portal_user()
    first = _reset_link(client, mailbox, user)
    stored = PortalUser.get_by_id(user.id)
    access_user = access.read_link("reset", first.rsplit("/", 1)[1])
    assert access_user is not None and access_user.id == stored.id
    from portal.db import write_txn
    from portal.services import auth as auth_service

    with write_txn():
        auth_service.set_password(stored, "another long password")
    client.get(first)
    assert client.get("/reset").status_code == 400


def test_reset_link_host_is_the_configured_one(client, mailbox):
    """B6: a forged Host header never reaches the emailed link."""
    user = factories.portal_user()
    ask_reset(client, user.email, headers={"Host": "evil.example"})
    link = link_in(mailbox.wait_for(1)[0])
    assert link.startswith("http://localhost/") and "evil" not in link


def test_reset_emails_per_address_are_capped(client, mailbox):
    """B3: ten requests for one address send at most three emails."""
    user = factories.portal_user()
    for _ in range(10):
        ask_reset(client, user.email)
    assert OutboxMessage.select().where(OutboxMessage.to_addr == user.email).count() <= 3


def test_unknown_or_disabled_logins_get_no_email(client, mailbox):
    disabled = factories.portal_user(status="disabled")
    ask_reset(client, disabled.email)
    ask_reset(client, "ghost@example.com")
    assert OutboxMessage.select().count() == 0


def test_invited_login_gets_a_fresh_invitation_instead(client, mailbox):
    user = factories.portal_user(status="invited", password=None)
    ask_reset(client, user.email)
    (message,) = mailbox.wait_for(1)
    assert "/invitation/" in link_in(message)


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("short pw1", False),  # 9 characters
        ("password123", False),  # well known
        ("aaaaaaaaaaaa", False),  # one character repeated
        ("x" * 5 + "correct horse battery staple" + "y" * 31, True),  # 64 characters
        ("P" * 129, False),
    ],
)
def test_password_policy(client, mailbox, password, ok):
    """C3: length and well-known passwords only; 64 characters are fine."""
    user = factories.portal_user()
    link = _reset_link(client, mailbox, user)
    client.get(link)
    response = client.post("/reset", data={"password": password, "confirm": password})
    assert response.status_code == (303 if ok else 422)
    if ok:
        assert login(client, user.email, password).status_code == 303


def test_long_passwords_are_not_truncated(client, mailbox):
    """C3: characters after the 72nd still count (no bcrypt-style truncation)."""
    user = factories.portal_user()
    link = _reset_link(client, mailbox, user)
    client.get(link)
    password = "long passphrase " * 5 + "tail-one"
    assert len(password) > 72
    client.post("/reset", data={"password": password, "confirm": password})
    assert login(client, user.email, password[:-1] + "X").status_code == 422
    assert login(client, user.email, password).status_code == 303


def test_mismatched_confirmation_is_422_next_to_the_field(client, mailbox):
    user = factories.portal_user()
    client.get(_reset_link(client, mailbox, user))
    response = client.post("/reset", data={"password": NEW, "confirm": NEW + "!"}, headers=HX)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'id="new-confirm-error"' in body and "<html" not in body
