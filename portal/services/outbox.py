"""The email outbox: queue in the caller's transaction, deliver after commit, retry with back-off.

Nothing is lost when SMTP is down: a message stays queued until a delivery succeeds or it
has used up `MAIL_MAX_ATTEMPTS`, and `flask worker` keeps retrying in the background.
"""

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

from ..db import db, utcnow, write_txn
from ..models import OutboxMessage

log = logging.getLogger(__name__)


def check_header(value: str) -> str:
    """Refuse a header value that could start another header (checklist B9)."""
    # Control characters and Unicode line separators too: some mail software splits on them.
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise ValueError("line breaks and control characters are not allowed in email headers")
    return value


def check_recipient(to: str) -> str:
    """Exactly one address: a comma in user input must not add recipients."""
    check_header(to)
    addresses = getaddresses([to])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        raise ValueError(f"not a single email address: {to!r}")
    return to


def queue(to: str, subject: str, body_text: str, body_html: str = "", kind: str = ""):
    """Write a message to the outbox; call inside the transaction of the change that causes it."""
    check_recipient(to)
    check_header(subject)
    message = OutboxMessage.create(
        to_addr=to,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        kind=kind,
        # Fixed now, so a retry after an unclear failure carries the same Message-ID and the
        # receiving side can tell it is a duplicate.
        message_id=make_msgid("outbox", domain=_mail_domain()),
    )
    if has_request_context():
        g.setdefault("outbox_ids", []).append(message.id)
    return message


def queue_template(kind: str, to: str, **objects):
    """Queue the `kind` email about these objects (a payment and its applications, a login),
    in staff's words or the built-in ones; call inside the transaction of the change."""
    from . import email_templates  # it imports this module

    values = email_templates.values_for(kind, **objects)
    subject, body = email_templates.compose(kind, values)
    return queue(to, subject, body, kind=kind)


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
    # A conditional update decides which worker sends a message; the claim lasts 5 minutes.
    claimed = (
        OutboxMessage.update(
            next_attempt_at=now + timedelta(minutes=5),
            attempts=OutboxMessage.attempts + 1,
        )
        .where(
            (OutboxMessage.id == message.id)
            & (OutboxMessage.status == "queued")
            & (OutboxMessage.next_attempt_at == message.next_attempt_at)
        )
        .execute()
    )
    return claimed == 1


def deliver_due(ids=None, limit: int = 50) -> int:
    """Send queued messages that are due (or the given ids); returns how many were sent."""
    now = utcnow()
    query = OutboxMessage.select().where(
        (OutboxMessage.status == "queued") & (OutboxMessage.next_attempt_at <= now)
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    sent = 0
    for message in query.order_by(OutboxMessage.id).limit(limit):
        with write_txn():
            if not _claim(message, now):
                continue
        try:
            message_id = send(message)
        except Exception as exc:  # any SMTP or socket failure: retry later
            _failed(message, exc)
            continue
        with write_txn():
            OutboxMessage.update(
                status="sent", sent_at=utcnow(), message_id=message_id, last_error=""
            ).where(OutboxMessage.id == message.id).execute()
        sent += 1
    return sent


def _failed(message: OutboxMessage, exc: Exception) -> None:
    config = current_app.config
    attempts = message.attempts + 1
    delay = timedelta(seconds=config["MAIL_RETRY_SECONDS"] * 2 ** (attempts - 1))
    final = attempts >= config["MAIL_MAX_ATTEMPTS"]
    log.warning("mail %s to %s failed (attempt %s): %s", message.id, message.to_addr, attempts, exc)
    with write_txn():
        OutboxMessage.update(
            status="failed" if final else "queued",
            next_attempt_at=utcnow() + delay,
            last_error=f"{type(exc).__name__}: {exc}"[:1000],
        ).where(OutboxMessage.id == message.id).execute()


def retry(message_id: int) -> None:
    """Put a failed message back in the queue, due now (inside the caller's transaction)."""
    OutboxMessage.update(status="queued", next_attempt_at=utcnow(), attempts=0).where(
        OutboxMessage.id == message_id
    ).execute()


def build(message: OutboxMessage) -> EmailMessage:
    """The MIME message for an outbox row."""
    config = current_app.config
    email = EmailMessage()
    email["From"] = config["MAIL_FROM"]
    email["To"] = message.to_addr
    email["Subject"] = message.subject
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = message.message_id or make_msgid("outbox", domain=_mail_domain())
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    return email


def _mail_domain() -> str:
    return parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"


def send(message: OutboxMessage) -> str:
    """Deliver one message over SMTP, or write it to `instance/outbox/` when no SMTP is set."""
    email = build(message)
    url = current_app.config["MAIL_URL"]
    if not url:
        folder = Path(current_app.instance_path) / "outbox"
        folder.mkdir(exist_ok=True)
        (folder / f"{message.id:06d}.eml").write_bytes(bytes(email))
        return email["Message-ID"]
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    host, port = parts.hostname or "localhost", parts.port
    if parts.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(host, port or 465, timeout=10, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port or 25, timeout=10)
    with smtp:
        if options.get("starttls", ["0"])[0] in ("1", "true", "yes"):
            smtp.starttls(context=ssl.create_default_context())
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(email)
    return email["Message-ID"]


def run_worker(interval: float = 5.0, once: bool = False) -> None:
    """Deliver the outbox until stopped (the Procfile's `worker`)."""
    while True:
        opened = db.connect(reuse_if_open=True)
        try:
            sent = deliver_due()
        except Exception:
            if once:
                raise
            # A database hiccup must not stop the worker; it tries again after the pause.
            log.exception("outbox delivery failed")
            sent = 0
        finally:
            if opened and not db.is_closed():
                db.close()
        if once:
            return
        if not sent:
            time.sleep(interval)
