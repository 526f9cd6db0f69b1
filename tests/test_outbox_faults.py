"""Issue 15: the outbox and the worker under real faults (checklist B9, B10).

A worker killed (SIGKILL) while the relay holds its message, a busy SQLite file with a slow
relay, a relay that accepts connections and never answers, days of SMTP outage, a relay that
refuses for good, and a control character stored in a case subject.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter as Tally
from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from flask import current_app, session

from portal.db import db, utcnow, write_txn
from portal.models import Case, Contact, Counter, OutboxMessage, Payment, PaymentAttempt
from portal.services import cases, outbox, payments

from . import factories
from .conftest import free_port, staff_login
from .test_payments import guest_pays

FLASK = Path(sys.executable).with_name("flask")


class Relay:
    """A real SMTP relay (aiosmtpd) that keeps what arrives; `hold` makes it wait after
    receiving a message's DATA until released, `delay` answers slowly, `answer` refuses."""

    def __init__(self, delay: float = 0.0, hold: bool = False, rcpt_answer: str = ""):
        self.messages = []
        self.lock = threading.Lock()
        self.delay, self.rcpt_answer = delay, rcpt_answer
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < count:
            assert time.monotonic() < deadline, f"the relay got {self.count()} of {count}"
            time.sleep(0.05)

    def ids(self) -> Tally:
        with self.lock:
            return Tally(m["Message-ID"] for m in self.messages)


@contextmanager
def relay(**options):
    server = Relay(**options)
    server.controller.start()
    try:
        yield server
    finally:
        server.release.set()
        server.controller.stop()


@contextmanager
def hung_relay():
    """A server that accepts SMTP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def worker_process(app, mail_url: str):
    """`flask --app portal worker` in a process of its own, on this test's database."""
    config = app.config
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": config["DATABASE_URL"],
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_SECRET_KEY": config["SECRET_KEY"] + "-" * 32,
        "PORTAL_PAYMENT_PROVIDERS": "offline,test-checkout",
        "PORTAL_MAIL_URL": mail_url,
        "PORTAL_BASE_URL": config["BASE_URL"],
    }
    process = subprocess.Popen(
        [str(FLASK), "--app", "portal", "worker", "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def later(monkeypatch, **delta):
    """Move the outbox's clock forward."""
    moved = utcnow() + timedelta(**delta)
    monkeypatch.setattr(outbox, "utcnow", lambda: moved)


def fresh(message) -> OutboxMessage:
    return OutboxMessage.get_by_id(message.id)


@pytest.fixture
def office(build_app):
    """An app (mail sent after commit, in the request) and a signed-in staff client."""

    def build(**config):
        app = build_app(**config)
        factories.staff(email="sam@example.com")
        client = app.test_client()
        staff_login(client, "sam@example.com")
        return app, client

    return build


# --- 1. SIGKILL between the hand-over and the result ----------------------------------------


def test_worker_killed_mid_send_never_sends_twice_and_staff_see_it(office, monkeypatch):
    """B10: the worker is SIGKILLed while the relay holds its message (DATA received, no
    answer yet). Later passes, well after the old 5-minute claim, do not send it again: it
    is held as uncertain, shown to staff, and one click sends it again with its Message-ID."""
    with relay(hold=True) as server:
        app, client = office(MAIL_URL=server.url)
        with write_txn():
            message = outbox.queue("pat@example.com", "Your receipt", "Thanks.")
        with worker_process(app, server.url) as worker:
            server.wait_for(1)
            time.sleep(0.2)  # the relay has DATA; the worker waits for its answer
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        server.release.set()
        after_kill = fresh(message).status

        later(monkeypatch, hours=1)
        outbox.deliver_due()
        outbox.deliver_due()
        assert server.count() == 1
        assert after_kill == "handoff"  # committed before the hand-over
        held = fresh(message)
        assert held.status == "uncertain" and "uncertain" in held.last_error

        home = client.get("/staff/").get_data(as_text=True)
        assert "emails that may not have arrived" in home
        listing = client.get("/staff/outbox/?status=uncertain").get_data(as_text=True)
        assert "Your receipt" in listing
        page = client.get(f"/staff/outbox/{message.id}").get_data(as_text=True)
        assert "may or may not have arrived" in page and "Send again" in page

        assert client.post(f"/staff/outbox/{message.id}/retry").status_code == 303
        server.wait_for(2)
        assert fresh(message).status == "sent"
        assert server.ids() == {message.message_id: 2}  # the resend kept its Message-ID


def test_a_claim_that_expired_before_the_hand_over_is_sent_once(build_app, monkeypatch):
    """A worker that died after claiming but before `DATA` never gave the relay anything:
    the message goes back to the queue and is sent once."""
    with relay() as server:
        build_app(MAIL_URL=server.url)
        with write_txn():
            message = outbox.queue("pat@example.com", "Hello", "Body")
        with write_txn():
            assert outbox._claim(fresh(message), utcnow())
        assert outbox.deliver_due() == 0  # claimed, not due
        later(monkeypatch, hours=1)
        assert outbox.deliver_due() == 1
        assert server.ids() == {message.message_id: 1}
        assert fresh(message).status == "sent"


def test_a_relay_silent_after_the_body_leaves_the_message_uncertain(build_app, monkeypatch):
    """The relay takes the whole message and then says nothing: after the SMTP timeout
    (`MAIL_TIMEOUT_SECONDS`, here 1 s) the message is uncertain, and not sent again."""
    with relay(hold=True) as server:
        build_app(MAIL_URL=server.url, MAIL_TIMEOUT_SECONDS=1)
        with write_txn():
            message = outbox.queue("pat@example.com", "Hello", "Body")
        started = time.monotonic()
        assert outbox.deliver_due() == 0
        assert time.monotonic() - started < 5
        server.release.set()
        row = fresh(message)
        assert row.status == "uncertain" and "no answer" in row.last_error
        later(monkeypatch, days=1)
        outbox.deliver_due()
        assert server.ids() == {message.message_id: 1}


# --- 2. SQLite: writes while a read is still stepping ----------------------------------------


def test_busy_database_and_slow_relay_deliver_every_message_exactly_once(build_app, monkeypatch):
    """B10: three delivering threads and a writer committing all the time, against a relay
    that takes 0.2 s per message: every message arrives once, none is left behind, and a
    later pass (after every claim expired) sends nothing again."""
    with relay(delay=0.2) as server:
        app = build_app(MAIL_URL=server.url, MAIL_SEND_ON_COMMIT=False)
        with write_txn():
            messages = [outbox.queue(f"p{i}@example.com", f"Hi {i}", "Body") for i in range(24)]
        stop = threading.Event()
        errors = []

        def writer():
            with app.app_context():
                db.connect(reuse_if_open=True)
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        with write_txn():
                            Counter.insert(name="busy", value=n).on_conflict(
                                conflict_target=[Counter.name], update={Counter.value: n}
                            ).execute()
                    except Exception as exc:  # the test's own writer may wait too long
                        errors.append(exc)
                    time.sleep(0.01)
                db.close()

        def deliverer():
            with app.app_context():
                db.connect(reuse_if_open=True)
                while not stop.is_set():
                    try:
                        outbox.deliver_due(limit=50)
                    except Exception as exc:
                        errors.append(exc)
                    time.sleep(0.05)
                db.close()

        threads = [threading.Thread(target=writer)] + [
            threading.Thread(target=deliverer) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                left = OutboxMessage.select().where(OutboxMessage.status != "sent").count()
                if not left:
                    break
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()

        later(monkeypatch, hours=1)
        outbox.deliver_due()
        outbox.deliver_due()
        assert server.ids() == {m.message_id: 1 for m in messages}
        statuses = {m.status for m in OutboxMessage.select()}
        assert statuses == {"sent"}, (statuses, errors[:3])


# --- 3. A hung relay does not hold up the money ---------------------------------------------


def _start_checkout(app, invoice, cents):
    with app.app_context(), app.test_request_context("/pay/invoice", method="POST"):
        session["payer"] = "payer-1"
        return payments.checkout(
            invoice.customer,
            [(invoice, cents)],
            "test-checkout",
            "Pat Payer",
            "pat@example.com",
            guest=True,
        )


def test_a_hung_relay_never_delays_payment_reconciliation(build_app):
    """A relay that accepts connections and never answers: the worker's mail loop waits on
    it (10 s per message by default, 40 s for these four), while its money loop applies,
    within seconds, a payment whose return never came."""
    with hung_relay() as hung_url:
        app = build_app(MAIL_URL=hung_url, MAIL_SEND_ON_COMMIT=False)
        with write_txn():
            for i in range(4):
                outbox.queue(f"p{i}@example.com", f"Hi {i}", "Body")
        invoice, _ = factories.invoice(total_cents=10_000)
        checkout = _start_checkout(app, invoice, 3_000)
        # The payer paid on the provider's page and closed the tab before coming back.
        assert app.test_client().post(checkout.redirect_url, data={"outcome": "pay"}).status_code
        PaymentAttempt.update(updated_at=utcnow() - timedelta(minutes=5)).execute()
        assert Payment.select().count() == 0

        with worker_process(app, hung_url):
            started = time.monotonic()
            while not Payment.select().count():
                assert time.monotonic() - started < 15, "reconciliation waited behind the mail"
                time.sleep(0.1)
        assert Payment.get().amount_cents == 3_000
        assert not OutboxMessage.select().where(OutboxMessage.status == "sent").count()


# --- 4. Days of outage, permanent refusals, what staff and payers are told --------------------


def test_an_outage_of_days_keeps_retrying_with_a_capped_back_off(build_app, monkeypatch):
    """B10: connection refused for three days: the message stays queued and is tried at
    least hourly (the back-off is capped); after the relay returns it is sent once. Only
    after `MAIL_GIVE_UP_DAYS` does an outage fail a message for good."""
    app = build_app(MAIL_URL=f"smtp://127.0.0.1:{free_port()}")
    with write_txn():
        message = outbox.queue("pat@example.com", "Hello", "Body")
        doomed = outbox.queue("kim@example.com", "Never", "Body")
    start = utcnow()
    hours = 0
    while hours < 72:
        hours += 1
        later_time = start + timedelta(hours=hours)
        monkeypatch.setattr(outbox, "utcnow", lambda t=later_time: t)
        outbox.deliver_due()
        row = fresh(message)
        assert row.status == "queued"
        assert row.next_attempt_at - later_time <= timedelta(hours=1)
    assert fresh(message).attempts >= 70
    with relay() as server:
        app.config["MAIL_URL"] = server.url
        OutboxMessage.update(next_attempt_at=start).where(OutboxMessage.id == message.id).execute()
        outbox.deliver_due(ids=[message.id])
        assert server.ids() == {message.message_id: 1}
    assert fresh(message).status == "sent"

    later(monkeypatch, days=6)
    outbox.deliver_due()
    gave_up = fresh(doomed)
    assert gave_up.status == "failed" and gave_up.last_error.startswith("Gave up after")


def test_a_permanent_refusal_fails_at_once_a_temporary_one_retries(build_app):
    """A 5xx answer to the recipient fails the message for good on its first attempt; a
    4xx answer keeps it queued."""
    with relay(rcpt_answer="550 5.1.1 no such mailbox") as refusing:
        build_app(MAIL_URL=refusing.url)
        with write_txn():
            message = outbox.queue("nobody@example.com", "Hello", "Body")
        outbox.deliver_due()
        row = fresh(message)
        assert (row.status, row.attempts) == ("failed", 1) and "550" in row.last_error
    with relay(rcpt_answer="451 4.3.0 try again later") as busy:
        current_app.config["MAIL_URL"] = busy.url
        with write_txn():
            later_one = outbox.queue("pat@example.com", "Hello", "Body")
        outbox.deliver_due()
        assert fresh(later_one).status == "queued" and "451" in fresh(later_one).last_error


def test_staff_home_counts_mail_waiting_and_failed(office):
    """The back-office home counts undelivered and failed emails from the outbox itself."""
    app, client = office(MAIL_URL=f"smtp://127.0.0.1:{free_port()}")
    with write_txn():
        outbox.queue("a@example.com", "One", "Body")
        outbox.queue("b@example.com", "Two", "Body")
        failed = outbox.queue("c@example.com", "Three", "Body")
    outbox.deliver_due()
    OutboxMessage.update(status="failed").where(OutboxMessage.id == failed.id).execute()
    home = client.get("/staff/").get_data(as_text=True)
    assert _tile(home, "emails waiting to be sent") == "2"
    assert _tile(home, "emails that could not be sent") == "1"
    tabs = client.get("/staff/outbox/?status=queued").get_data(as_text=True)
    assert "One" in tabs and "Two" in tabs and "Three" not in tabs


def _tile(html: str, label: str) -> str:
    before = html[: html.index(label)]
    value = before[before.rindex('<span class="tile-value">') :]
    return value.removeprefix('<span class="tile-value">').split("<", 1)[0]


def test_the_receipt_page_says_will_be_sent_until_the_copy_went_out(make_app, mailbox):
    """The receipt page says "was sent" only when its email really went out."""
    app = make_app(MAIL_URL=f"smtp://127.0.0.1:{free_port()}")
    with app.app_context():
        db.connect(reuse_if_open=True)
        invoice, code = factories.invoice(total_cents=10_000)
        client = app.test_client()
        page = guest_pays(client, invoice, code, "25.00")
        assert "A copy of this receipt will be sent to pat@example.com" in page.text
        assert "was sent" not in page.text
        app.config["MAIL_URL"] = f"smtp://127.0.0.1:{mailbox.port}"
        OutboxMessage.update(next_attempt_at=utcnow()).execute()
        assert outbox.deliver_due() >= 1
        again = client.get(page.request.path)
        assert "A copy of this receipt was sent to pat@example.com" in again.text
        db.close()


# --- 5. A control character stored in a case subject ----------------------------------------


def staff_reply_with(client, mailbox, subject="", email=""):
    """A case whose subject or contact address is written straight into the database; a
    staff member answers it and sets it waiting, which must work whatever they hold."""
    customer = factories.customer(name="Acme")
    buyer = factories.portal_user(customer, email="pat@acme.example")
    case = cases.create_case(buyer, "Damaged pallet", "Two boxes arrived crushed.")
    outbox.deliver_due()  # the customer's acknowledgement of the case goes out first
    if subject:
        Case.update(subject=subject).where(Case.id == case.id).execute()
    if email:
        Contact.update(email=email).where(Contact.id == buyer.contact_id).execute()
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    mailbox.clear()
    response = client.post(
        f"/staff/cases/{case.id}/reply",
        data={"body": "A replacement ships today.", "status": "waiting"},
    )
    assert response.status_code == 303
    assert Case.get_by_id(case.id).status == "waiting"


@pytest.mark.parametrize("odd", ["\x07", "\x1b[31m", "\x7f", "\x90", "\r\nBcc: x@evil.example"])
def test_b9_a_stored_control_character_never_blocks_a_staff_reply(client, mailbox, odd):
    """B9: a case subject written straight into the database with a control character
    (BEL, ESC, DEL, U+0090, CR/LF): staff reply and change the status as usual, and the
    email goes out with the character replaced (no extra header, no extra recipient)."""
    staff_reply_with(client, mailbox, subject=f"Damaged{odd}pallet")
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@acme.example" and message["Bcc"] is None
    assert "Damaged" in message["Subject"] and "pallet" in message["Subject"]
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in message["Subject"])


def test_b9_a_stored_odd_address_never_blocks_a_staff_reply(client, mailbox):
    """B9: a contact address written straight into the database with a control character
    and a second address: the staff reply still succeeds, nothing is sent to either
    address, and staff find the email as failed, with the reason."""
    staff_reply_with(client, mailbox, email="pat@acme.example\x07, x@evil.example")
    failed = OutboxMessage.get(OutboxMessage.kind == "case_update")
    assert failed.status == "failed" and failed.last_error.startswith("Not sent:")
    assert outbox.deliver_due() == 0
    assert mailbox.messages == []
    page = client.get("/staff/outbox/?status=failed").get_data(as_text=True)
    assert "Damaged pallet" in page
