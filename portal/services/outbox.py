"""The email outbox: queue in the caller's transaction, deliver after commit, retry with back-off.

Nothing is lost when SMTP is down, and nothing is sent twice when a worker dies mid-send.

A message's life, in `OutboxMessage.status`:

- `queued`: waiting; due at `next_attempt_at`.
- `sending`: a worker claimed it (committed before it talks to the relay); the claim
  lasts until `next_attempt_at`. The relay has not been given the message yet.
- `handoff`: the worker is handing it over (recorded and committed just before the SMTP
  `DATA` command). From here the relay may have it, whatever happens to the worker.
- `sent`: the relay accepted it (250 after `DATA`).
- `uncertain`: a hand-over whose result nobody recorded (the worker was killed, the relay
  stopped answering after the body, or the result could not be written). The relay may or
  may not have it, so it is **held for staff**, never resent by itself; staff see it in the
  outbox and on the back-office home and can send it again with one click.
- `failed`: the relay refused it for good (a 5xx answer to the sender, the recipient or the
  body), or transient failures went on for `MAIL_GIVE_UP_DAYS`.

Why hold instead of resending with the same Message-ID: each message gets its Message-ID
when it is queued, and every resend carries it, but SMTP relays and mailboxes do not
de-duplicate on it, so a blind resend is a second email in the customer's inbox. A claim
that expired while still `sending` is safe to retry (the relay never saw `DATA`); one that
expired in `handoff` is not knowable from here, and a person decides.

Transient failures (refused connection, timeouts, 4xx answers, a relay that hangs) are
retried with a doubling back-off capped at `MAIL_RETRY_MAX_SECONDS`, for days. The SMTP
socket timeout is `MAIL_TIMEOUT_SECONDS`, so a hung relay costs one worker thread at most
that long per step, and the money side of `flask worker` runs in a thread of its own.

What the worker reads it reads whole before writing (`list(...)`): on SQLite a write on a
connection whose SELECT is still being stepped gets an instant "database is locked" from
its stale snapshot, which `busy_timeout` does not cover. Each write is a short
`BEGIN IMMEDIATE` transaction, and the result of a hand-over is written with retries.
"""

import json
import logging
import smtplib
import ssl
import threading
import time
import unicodedata
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app, g, has_request_context
from peewee import DatabaseError, InterfaceError, fn

from ..db import db, locked, utcnow, write_txn
from ..models import OutboxMessage
from . import audit

log = logging.getLogger(__name__)

# Statuses of a message not yet delivered (queued, or a worker is on it).
WAITING = ("queued", "sending", "handoff")
# Statuses staff can send again with one click.
RESENDABLE = ("failed", "uncertain")

# Defaults of the settings this module reads (`PORTAL_<NAME>` overrides each).
DEFAULTS = {
    "MAIL_TIMEOUT_SECONDS": 10,  # SMTP socket timeout, per connect/command/reply
    "MAIL_RETRY_SECONDS": 60,  # first back-off; it doubles on each transient failure
    "MAIL_RETRY_MAX_SECONDS": 3600,  # ...up to this
    "MAIL_GIVE_UP_DAYS": 5,  # transient failures for this long: failed, for staff
}


def setting(name: str):
    """A mail setting from the app's config, or its default here."""
    return current_app.config.get(name, DEFAULTS[name])


def _claim_seconds() -> float:
    """How long a worker's claim on a message lasts: longer than a slow but live send."""
    return max(300.0, 12 * float(setting("MAIL_TIMEOUT_SECONDS")))


def clean_header(value: str) -> str:
    """A header value with every control character and line break replaced by a space
    (checklist B9): what a stored value holds can never start another header, and one
    odd value (a BEL in a case subject) never stops an email from being built."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in str(value)
    )
    return " ".join(cleaned.split()) if cleaned != value else value


def check_header(value: str) -> str:
    """Refuse a header value that could start another header (checklist B9)."""
    if clean_header(value) != value:
        raise ValueError("line breaks and control characters are not allowed in email headers")
    return value


def check_recipient(to: str) -> str:
    """Exactly one address: a comma in user input must not add recipients."""
    check_header(to)
    addresses = getaddresses([to])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        raise ValueError(f"not a single email address: {to!r}")
    return to


# Headers a caller may add; From, To, Subject, Date and Message-ID are the outbox's own.
EXTRA_HEADERS = ("Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post", "Auto-Submitted")


def check_headers(headers: dict | None) -> str:
    """The extra headers as stored (JSON, "" for none); refuses unknown names and values
    with line breaks, so no caller can inject a header."""
    if not headers:
        return ""
    for name, value in headers.items():
        if name not in EXTRA_HEADERS:
            raise ValueError(f"not a header the outbox adds: {name!r}")
        check_header(value)
    return json.dumps(headers, sort_keys=True)


def queue(
    to: str,
    subject: str,
    body_text: str,
    body_html: str = "",
    kind: str = "",
    about: str = "",
    headers: dict | None = None,
):
    """Write a message to the outbox; call inside the transaction of the change that causes it.

    `about` (say `payment-42`) goes into the Message-ID, so the message can be found again
    from what it is about (the receipt page asks whether its copy went out). `headers` adds
    any of `EXTRA_HEADERS` (a one-click unsubscribe, a per-case Reply-To).
    """
    check_recipient(to)
    check_header(subject)
    message = OutboxMessage.create(
        to_addr=to,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        kind=kind,
        headers=check_headers(headers),
        # Fixed now, so every delivery of this message carries the same Message-ID.
        message_id=make_msgid(about or None, domain=_mail_domain()),
    )
    if has_request_context():
        g.setdefault("outbox_ids", []).append(message.id)
    return message


def record_unsendable(to: str, subject: str, body: str, kind: str, about: str, error: str):
    """Keep an email that cannot be sent (a stored address that is not one clean address) as
    failed, for staff to see and fix, instead of failing the change that sends it."""
    return OutboxMessage.create(
        to_addr=clean_header(to)[:320],
        subject=clean_header(subject),
        body_text=body,
        kind=kind,
        status="failed",
        last_error=error[:1000],
        message_id=make_msgid(about or None, domain=_mail_domain()),
    )


def receipt_state(payment) -> str | None:
    """The status of the receipt emailed for `payment` (`sent`, `queued`, `failed`, ...), or
    None when none was queued: the receipt page says "was sent" only when it was."""
    if not payment or not payment.payer_email:
        return None
    message = (
        OutboxMessage.select(OutboxMessage.status)
        .where(
            (OutboxMessage.to_addr == payment.payer_email)
            & (OutboxMessage.kind == "receipt")
            & OutboxMessage.message_id.contains(f".payment-{payment.id}@")
        )
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return message.status if message else None


def counts() -> dict:
    """How many messages each status holds, plus `waiting` (not yet delivered)."""
    by_status = dict(
        OutboxMessage.select(OutboxMessage.status, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.status)
        .tuples()
    )
    by_status["waiting"] = sum(by_status.get(s, 0) for s in WAITING)
    return by_status


def after_request(response):
    """Deliver what this request queued, once its transaction has committed."""
    ids = g.pop("outbox_ids", None)
    mode = current_app.config["MAIL_SEND_ON_COMMIT"]
    if not ids or not mode:
        return response
    if mode == "sync":
        try:
            deliver_due(ids=ids)
        except Exception:  # the change is committed; the worker delivers later
            log.exception("delivery after commit failed")
    else:
        app = current_app._get_current_object()
        threading.Thread(target=_deliver_in_thread, args=(app, ids), daemon=True).start()
    return response


def _deliver_in_thread(app, ids):
    with app.app_context():
        try:
            db.connect(reuse_if_open=True)
            deliver_due(ids=ids)
        except Exception:  # the worker retries; a failed thread must not crash anything
            log.exception("delivery after commit failed")
        finally:
            if not db.is_closed():
                db.close()


def _claim(message: OutboxMessage, now) -> bool:
    """Claim a due message for this worker (a conditional update: one worker wins); the
    caller commits it before any SMTP. On success `message` holds the claim's deadline."""
    lease = now + timedelta(seconds=_claim_seconds())
    claimed = (
        OutboxMessage.update(
            status="sending", next_attempt_at=lease, attempts=OutboxMessage.attempts + 1
        )
        .where(
            (OutboxMessage.id == message.id)
            & (OutboxMessage.status == "queued")
            & (OutboxMessage.next_attempt_at <= now)
        )
        .execute()
    )
    if claimed != 1:
        return False
    message.status, message.next_attempt_at = "sending", lease
    message.attempts += 1
    return True


def _move(message: OutboxMessage, to: str, **fields) -> bool:
    """Move a message this worker holds from its current status to `to`, in a short
    transaction of its own; False when the claim was lost (expired and taken over)."""
    with write_txn():
        moved = (
            OutboxMessage.update(status=to, **fields)
            .where(
                (OutboxMessage.id == message.id)
                & (OutboxMessage.status == message.status)
                & (OutboxMessage.next_attempt_at == message.next_attempt_at)
            )
            .execute()
        )
    if moved == 1:
        message.status = to
        message.next_attempt_at = fields.get("next_attempt_at", message.next_attempt_at)
    return moved == 1


def _record(write, *args, **kwargs):
    """Write the result of a hand-over, retrying through a busy or lost database for about a
    minute: a result that is never written leaves the message `uncertain`, not resent."""
    for pause in (0.1, 0.5, 1, 2, 4, 8, 15, 30, None):
        try:
            return write(*args, **kwargs)
        except (DatabaseError, InterfaceError):
            if pause is None:
                raise
            log.warning("outbox: could not record a delivery result; retrying", exc_info=True)
            if db.transaction_depth() == 0 and not db.is_closed():
                db.close()  # a broken connection is replaced on the next try
            time.sleep(pause)
            db.connect(reuse_if_open=True)


class LostClaim(Exception):
    """Another worker took the message over before its hand-over began."""


def recover(now=None) -> int:
    """Claims whose deadline passed: `sending` goes back to the queue (the relay never got
    the message), `handoff` becomes `uncertain` and waits for staff. Returns how many."""
    now = now or utcnow()
    with write_txn():
        requeued = (
            OutboxMessage.update(status="queued", next_attempt_at=now)
            .where((OutboxMessage.status == "sending") & (OutboxMessage.next_attempt_at <= now))
            .execute()
        )
        held = (
            OutboxMessage.update(
                status="uncertain",
                last_error="Delivery uncertain: the worker handed this email to the mail "
                "relay but never recorded the answer. Check with the recipient, or send it "
                "again (it keeps its Message-ID).",
            )
            .where((OutboxMessage.status == "handoff") & (OutboxMessage.next_attempt_at <= now))
            .execute()
        )
    if held:
        log.warning("outbox: %s message(s) held as uncertain for staff", held)
    return requeued + held


def deliver_due(ids=None, limit: int = 50) -> int:
    """Send queued messages that are due (or the given ids); returns how many were sent."""
    now = utcnow()
    if ids is None:
        recover(now)
    query = OutboxMessage.select().where(
        (OutboxMessage.status == "queued") & (OutboxMessage.next_attempt_at <= now)
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    # Read whole before the first write (see the module docstring).
    due = list(query.order_by(OutboxMessage.id).limit(limit))
    sent = 0
    for message in due:
        try:
            with write_txn():
                claimed = _claim(message, utcnow())
        except Exception:  # a busy database: this message stays queued for the next pass
            log.warning("outbox: could not claim message %s", message.id, exc_info=True)
            continue
        if not claimed:
            continue
        sent += _deliver(message)
    return sent


def _deliver(message: OutboxMessage) -> int:
    """Send one claimed message and record what happened; 1 if it was sent."""
    try:
        message_id = send(message, before_data=lambda: _handoff(message))
    except LostClaim:
        return 0
    except Exception as exc:
        _record(_failed, message, exc)
        return 0
    _record(_sent, message, message_id)
    return 1


def _handoff(message: OutboxMessage) -> None:
    if not _record(_move, message, "handoff"):
        raise LostClaim(message.id)


def _sent(message: OutboxMessage, message_id: str) -> None:
    # Also from `uncertain`: the claim expired while the relay was slow, and now it answered.
    with write_txn():
        OutboxMessage.update(
            status="sent", sent_at=utcnow(), message_id=message_id, last_error=""
        ).where(
            (OutboxMessage.id == message.id)
            & OutboxMessage.status.in_(("sending", "handoff", "uncertain"))
        ).execute()


def permanent(exc: Exception) -> bool:
    """A refusal for good: a 5xx answer about this message's sender, recipient or body."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    return isinstance(exc, smtplib.SMTPNotSupportedError)


def _failed(message: OutboxMessage, exc: Exception) -> None:
    now = utcnow()
    error = f"{type(exc).__name__}: {exc}"[:1000]
    after_body = getattr(exc, "after_body", False)
    if after_body and not isinstance(exc, smtplib.SMTPResponseException):
        status = "uncertain"  # the body went out and no answer came back
        error = f"Delivery uncertain: no answer after the message was sent. {error}"[:1000]
    elif permanent(exc):
        status = "failed"
    elif now - message.created_at >= timedelta(days=float(setting("MAIL_GIVE_UP_DAYS"))):
        status = "failed"
        error = f"Gave up after {message.attempts} attempts. {error}"[:1000]
    else:
        status = "queued"
    first, cap = float(setting("MAIL_RETRY_SECONDS")), float(setting("MAIL_RETRY_MAX_SECONDS"))
    delay = min(cap, first * 2 ** min(message.attempts - 1, 30))
    log.warning(
        "mail %s to %s: attempt %s %s: %s",
        message.id,
        message.to_addr,
        message.attempts,
        status,
        exc,
    )
    with write_txn():
        OutboxMessage.update(
            status=status, next_attempt_at=now + timedelta(seconds=delay), last_error=error
        ).where(
            (OutboxMessage.id == message.id)
            & OutboxMessage.status.in_(("sending", "handoff", "uncertain"))
        ).execute()


def retry(message_id: int) -> None:
    """Put a message back in the queue, due now (inside the caller's transaction)."""
    OutboxMessage.update(status="queued", next_attempt_at=utcnow(), attempts=0).where(
        OutboxMessage.id == message_id
    ).execute()


def send_again(message_id: int, by) -> bool:
    """Staff send a failed or uncertain email again (same Message-ID); audited, delivered
    after this request commits. False when the message is in neither state."""
    with write_txn():
        message = locked(
            OutboxMessage.select().where(
                (OutboxMessage.id == message_id) & OutboxMessage.status.in_(RESENDABLE)
            )
        ).first()
        if message is None:
            return False
        retry(message.id)
        audit.record(
            "outbox.retried",
            message,
            actor=by,
            to=message.to_addr,
            kind=message.kind,
            was=message.status,
        )
    if has_request_context():
        g.setdefault("outbox_ids", []).append(message.id)
    return True


def build(message: OutboxMessage) -> EmailMessage:
    """The MIME message for an outbox row."""
    config = current_app.config
    email = EmailMessage()
    email["From"] = config["MAIL_FROM"]
    email["To"] = message.to_addr
    email["Subject"] = clean_header(message.subject)
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = message.message_id or make_msgid("outbox", domain=_mail_domain())
    for name, value in json.loads(message.headers or "{}").items():
        email[name] = value
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    return email


def _mail_domain() -> str:
    return parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"


class _HandOver:
    """What `send` adds to smtplib's client: a call just before `DATA` (the hand-over is
    recorded), and a note of whether the body went out (an error after it is uncertain)."""

    before_data = None
    in_data = body_sent = False

    def data(self, msg):
        if self.before_data:
            self.before_data()
        self.in_data = True
        try:
            return super().data(msg)
        finally:
            self.in_data = False

    def send(self, s):
        if self.in_data and isinstance(s, bytes):  # the body (commands are str)
            self.body_sent = True
        return super().send(s)


class _SMTP(_HandOver, smtplib.SMTP):
    pass


class _SMTPS(_HandOver, smtplib.SMTP_SSL):
    pass


def send(message: OutboxMessage, before_data=None) -> str:
    """Deliver one message over SMTP, or write it to `instance/outbox/` when no SMTP is set.

    `before_data` runs after the relay accepted the sender and recipients, just before the
    message itself goes out; an exception raised after the body was sent has `after_body`.
    """
    email = build(message)
    url = current_app.config["MAIL_URL"]
    if not url:
        if before_data:
            before_data()
        folder = Path(current_app.instance_path) / "outbox"
        folder.mkdir(exist_ok=True)
        (folder / f"{message.id:06d}.eml").write_bytes(bytes(email))
        return email["Message-ID"]
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    host, port = parts.hostname or "localhost", parts.port
    timeout = float(setting("MAIL_TIMEOUT_SECONDS"))
    if parts.scheme == "smtps":
        context = ssl.create_default_context()
        smtp = _SMTPS(host, port or 465, timeout=timeout, context=context)
    else:
        smtp = _SMTP(host, port or 25, timeout=timeout)
    smtp.before_data = before_data
    try:
        if options.get("starttls", ["0"])[0] in ("1", "true", "yes"):
            smtp.starttls(context=ssl.create_default_context())
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(email)
    except Exception as exc:
        exc.after_body = smtp.body_sent
        smtp.close()
        raise
    # Accepted: a relay that hangs up or stalls on QUIT changes nothing.
    try:
        smtp.quit()
    except Exception:
        smtp.close()
    return email["Message-ID"]
