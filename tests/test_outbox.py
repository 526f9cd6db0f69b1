"""The email outbox (checklist B9, B10): written with the change, sent after commit, retried."""

import time
from datetime import timedelta

import pytest

from portal.db import db, utcnow, write_txn
from portal.models import Customer, OutboxMessage
from portal.services import email_templates, outbox

from . import factories
from .conftest import free_port


class Boom(Exception):
    pass


def add_routes(app):
    """Two tiny endpoints that change something and queue a message in the same transaction."""

    def change_and_mail():
        with write_txn():
            Customer.create(account_number="NEW1", name="New Customer")
            outbox.queue("pat@example.com", "Welcome", "Hello Pat.")
        return "done"

    def mail_then_fail():
        with write_txn():
            Customer.create(account_number="NEW2", name="Never Saved")
            outbox.queue("pat@example.com", "Never", "This change rolls back.")
            raise Boom("the change failed after the message was queued")

    app.add_url_rule("/_test/mail", "test_mail", change_and_mail, methods=["POST"])
    app.add_url_rule("/_test/fail", "test_fail", mail_then_fail, methods=["POST"])
    return app


@pytest.fixture
def build(make_app, mailbox):
    """An app (with the test routes) and its app context, built with extra config."""
    contexts = []

    def _build(**config):
        app = add_routes(make_app(**config))
        context = app.app_context()
        context.push()
        contexts.append(context)
        db.connect(reuse_if_open=True)
        return app

    yield _build
    for context in reversed(contexts):
        if not db.is_closed():
            db.close()
        context.pop()


def later(monkeypatch, **delta):
    """Move the outbox's clock forward."""
    moved = utcnow() + timedelta(**delta)
    monkeypatch.setattr(outbox, "utcnow", lambda: moved)


def test_a_rolled_back_message_is_never_sent(build, mailbox):
    """B10: the message lives and dies with the transaction of the change."""
    app = build()
    with pytest.raises(Boom):
        with write_txn():
            outbox.queue("pat@example.com", "Never", "Rolled back.")
            raise Boom()
    assert OutboxMessage.select().count() == 0
    assert outbox.deliver_due() == 0
    response = app.test_client().post("/_test/fail")
    assert response.status_code == 500
    assert Customer.select().count() == 0
    assert OutboxMessage.select().count() == 0
    assert outbox.deliver_due() == 0
    assert mailbox.messages == []


def test_sent_right_after_commit(build, mailbox):
    """B10: after the commit the message reaches the SMTP server, once, and is marked sent."""
    app = build()
    response = app.test_client().post("/_test/mail")
    assert response.status_code == 200
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@example.com" and message["Subject"] == "Welcome"
    assert message["From"] == app.config["MAIL_FROM"]
    row = OutboxMessage.get()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at is not None and message["Message-ID"] == row.message_id
    assert outbox.deliver_due() == 0
    assert len(mailbox.messages) == 1


def test_sent_in_a_background_thread_by_default(build, mailbox):
    """The production mode: the request returns and a thread delivers after commit."""
    app = build(MAIL_SEND_ON_COMMIT=True)
    assert app.test_client().post("/_test/mail").status_code == 200
    (message,) = mailbox.wait_for(1)
    assert message["Subject"] == "Welcome"
    # The thread marks it sent right after; wait for that so it never outlives the test.
    deadline = time.monotonic() + 5
    while OutboxMessage.get().status != "sent" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert OutboxMessage.get().status == "sent"


def test_smtp_down_keeps_the_change_and_retries_with_back_off(build, mailbox, monkeypatch):
    """B10: SMTP down → the change is committed, the message waits; later it goes out once."""
    app = build(MAIL_URL=f"smtp://127.0.0.1:{free_port()}", MAIL_RETRY_SECONDS=60)
    started = utcnow()
    response = app.test_client().post("/_test/mail")
    assert response.status_code == 200  # the person's action succeeded
    assert Customer.get(Customer.account_number == "NEW1").name == "New Customer"
    first = OutboxMessage.get()
    assert (first.status, first.attempts) == ("queued", 1)
    assert first.last_error
    assert first.next_attempt_at >= started + timedelta(seconds=59)

    # Not due yet: the worker leaves it alone.
    assert outbox.deliver_due() == 0
    assert OutboxMessage.get().attempts == 1

    # Due, still down: the wait doubles.
    later(monkeypatch, seconds=61)
    assert outbox.deliver_due() == 0
    second = OutboxMessage.get()
    assert (second.status, second.attempts) == ("queued", 2)
    wait = second.next_attempt_at - (started + timedelta(seconds=61))
    assert timedelta(seconds=119) <= wait <= timedelta(seconds=125)

    # SMTP is back: the next due run sends it exactly once, with its original Message-ID.
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{mailbox.port}"
    later(monkeypatch, seconds=200)
    assert outbox.deliver_due() == 1
    assert outbox.deliver_due() == 0
    (message,) = mailbox.wait_for(1)
    assert message["Message-ID"] == first.message_id
    final = OutboxMessage.get()
    assert (final.status, final.attempts, final.last_error) == ("sent", 3, "")


def test_one_claim_per_message(build):
    """Two workers that read the same due message: only one of them sends it."""
    build()
    with write_txn():
        outbox.queue("pat@example.com", "Hi", "Body")
    seen_by_a = OutboxMessage.get()
    seen_by_b = OutboxMessage.get()
    now = utcnow()
    with write_txn():
        assert outbox._claim(seen_by_a, now) is True
    with write_txn():
        assert outbox._claim(seen_by_b, now) is False


def test_without_mail_url_messages_become_eml_files(build, mailbox):
    """docs/design.md: with no PORTAL_MAIL_URL each message is written under instance/outbox/."""
    app = build(MAIL_URL="")
    with write_txn():
        message = outbox.queue("pat@example.com", "Your receipt", "Thanks.")
    assert outbox.deliver_due() == 1
    path = app.instance_path + f"/outbox/{message.id:06d}.eml"
    with open(path, "rb") as fh:
        raw = fh.read()
    assert b"Subject: Your receipt" in raw and b"To: pat@example.com" in raw
    assert OutboxMessage.get().status == "sent"
    assert mailbox.messages == []


@pytest.mark.parametrize(
    "to, subject",
    [
        ("pat@example.com", "Hello\r\nBcc: victim@example.com"),
        ("pat@example.com", "Hello\nBcc: victim@example.com"),
        ("pat@example.com", "Hello\u2028Bcc: victim@example.com"),
        ("pat@example.com\r\nBcc: victim@example.com", "Hello"),
        ("pat@example.com, victim@example.com", "Hello"),
        ("not an address", "Hello"),
    ],
)
def test_header_injection_is_refused(build, to, subject):
    """B9: CR/LF (and other line breaks) in headers, or extra recipients, never get queued."""
    build()
    with pytest.raises(ValueError):
        with write_txn():
            outbox.queue(to, subject, "Body")
    assert OutboxMessage.select().count() == 0


def test_templates_queue_a_subject_and_body(build, mailbox):
    """The first line of templates/email/<kind>.txt is the subject, the rest the body."""
    build()
    invoice, _ = factories.invoice()
    with write_txn():
        message = email_templates.queue(
            "pay_link",
            "pat@example.com",
            invoice=invoice,
            customer=invoice.customer,
            link="https://portal.example/p/1",
        )
    assert message.subject == f"Pay invoice {invoice.number} online"
    assert message.body_text.startswith("Hello,")
    assert "https://portal.example/p/1" in message.body_text
    assert outbox.deliver_due() == 1
    (sent,) = mailbox.wait_for(1)
    assert sent["Subject"] == message.subject
