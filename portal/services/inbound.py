"""Replies by email: a customer answers a case email in their own mail client, and the answer
lands on the case as if they had typed it on the case page.

The address. With `PORTAL_REPLY_BY_EMAIL` on, each case email to a contact carries a signed
`Reply-To: reply+<case>.<contact>.<signature>@<domain>` (services/reply_address.py says how
it is made and why it has no expiry).

The process. `flask inbound` (`serve`) runs an SMTP server (aiosmtpd) on `INBOUND_HOST`:
`INBOUND_PORT` (127.0.0.1:2525) for the business's mail server to hand those messages to.
A message is taken (250) only when all of this holds, and refused with a 550 that says why
otherwise, changing nothing and never opening a case:

- the recipient is a reply address of this domain whose signature is right, naming a case
  and a contact of that case's customer (a forged or damaged address is refused as early as
  `RCPT TO`; any other address is not ours: this is no relay);
- the case is not closed (a resolved case is reopened by the reply, as on the case page);
- the `From:` address is a contact allowed to see the case: the login that opened it (not
  disabled), or an active login of the same customer with the cases role whose site scope
  includes the case's site;
- there is text above the quoted history, within the case page's limit, and any attached
  files pass the same checks as files attached on the case page.

The text is the newest part of the message: the `text/plain` part, else the `text/html` part
made into text (quoted blocks left out); quoted history ("On … wrote:", Outlook's "From: …
Sent: …" block, "> " lines) and signatures are stripped by `mail-parser-reply` (languages in
`INBOUND_LANGUAGES`, default English). Files attached as attachments are kept through
`attachments`; inline images (a signature's logo) are left out. The reply is added by
`cases.reply_as_customer`, the function the case page uses, so staff alerts and open case
pages see it the same way. Automatic replies (`Auto-Submitted`, `Precedence: bulk`, a null
sender) are taken and dropped, so an out-of-office notice neither lands on the case nor
bounces.

A mail server that hands the same message over twice (its connection dropped after our 250)
adds it once: each message's Message-ID (or a digest of the whole message when it has none)
is a unique `InboundMail` row, claimed before the reply is added and marked done after.
"""

import hashlib
import io
import logging
import re
import signal
import threading
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser

from flask import current_app
from peewee import IntegrityError
from werkzeug.datastructures import FileStorage

from ..db import db, utcnow, write_txn
from ..models import Case, CaseMessage, Contact, PortalUser
from ..models_inbound import InboundMail
from . import attachments, audit, cases, reply_address, settings

log = logging.getLogger(__name__)

MAX_TEXT = 10_000  # the case page's reply limit (forms.cases.ReplyForm)
# A claim older than this whose reply is not on the case was left by a process that died.
STALE_CLAIM = timedelta(minutes=5)

TEMPORARY = "451 4.3.0 A temporary problem on our side; please try again later"


# --- what is taken and what is refused --------------------------------------------------


class Refusal(Exception):
    """A message we will not take: `reply` is the SMTP answer (code and words)."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def _company() -> str:
    return settings.get("company_name")


def check_recipient(address: str) -> str | None:
    """None when `address` is a reply address we take mail for, else the SMTP refusal."""
    local, _, host = (address or "").strip().strip("<>").lower().rpartition("@")
    if host != reply_address.domain() or not local.startswith(reply_address.PREFIX):
        return "550 5.1.1 No such address here; this server takes only replies to case emails"
    found = reply_address.read(address)
    if found is None:
        return (
            "550 5.1.1 This reply address is not valid (it was changed, or not made by "
            f"{_company()}); reply to the latest email about your case, or use the portal"
        )
    try:
        _check_case(found[0])
    except Refusal as refusal:
        return refusal.reply
    return None


def _check_case(case: Case) -> None:
    if not settings.get("module_cases"):
        raise Refusal(
            f"550 5.7.1 {_company()} does not take support cases in the portal now; "
            "please contact them directly"
        )
    if case.status == "closed":
        raise Refusal(
            f"550 5.7.1 Case {case.number} is closed and takes no more replies; "
            f"open a new case in the portal: {current_app.config['BASE_URL']}"
        )


def sender_login(case: Case, address: str) -> PortalUser:
    """The login a reply from `address` is added as: the login that opened the case (not
    disabled), or an active login of the customer with the cases role that can see the case
    (site scope included); else Refusal."""
    refusal = Refusal(
        f"550 5.7.1 {address or 'This sender'} may not reply to case {case.number}; reply "
        "from the address the case email was sent to, or sign in to the portal"
    )
    contact = Contact.get_or_none(Contact.email == (address or "").lower()) if address else None
    if contact is None or contact.customer_id != case.customer_id:
        raise refusal
    login = PortalUser.get_or_none(PortalUser.contact == contact)
    if login is None or login.status == "disabled":
        raise refusal
    if login.id == case.portal_user_id:
        return login
    if (
        login.status == "active"
        and login.has_role("cases")
        and cases.case_for(login, case.id) is not None
    ):
        return login
    raise refusal


def _from_address(message) -> str:
    try:
        found = getaddresses([str(message.get("From", ""))])
    except Exception:  # a header too damaged to read names nobody
        return ""
    addresses = [addr for _name, addr in found if "@" in addr]
    return addresses[0].lower() if len(addresses) == 1 else ""


def automatic(message, sender: str) -> bool:
    """An out-of-office notice, a bounce or a list's mail: never a person's answer."""
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        not sender
        or submitted not in ("", "no")
        or precedence in ("bulk", "junk", "list", "auto_reply")
        or message.get("X-Autoreply") is not None
        or message.get("X-Autorespond") is not None
    )


# --- the text of a reply ----------------------------------------------------------------


class _HtmlText(HTMLParser):
    """The text of an HTML mail: paragraphs and line breaks kept, quoted blocks (a
    blockquote, Gmail's quote, Outlook's reply header and everything after it) left out."""

    SKIP = {"script", "style", "head", "title", "blockquote", "template"}
    BLOCK = {
        "p", "div", "br", "li", "tr", "table", "ul", "ol", "hr", "pre",
        "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
    }  # fmt: skip
    VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
    QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix")
    HISTORY_IDS = ("divrplyfwdmsg", "appendonsend")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0  # open elements inside a left-out block
        self.done = False  # Outlook's history started: nothing after it is the reply

    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        attrs = {name: (value or "") for name, value in attrs}
        if self.skipping:
            if tag not in self.VOID:
                self.skipping += 1
            return
        if attrs.get("id", "").lower() in self.HISTORY_IDS:
            self.done = True
            return
        classes = attrs.get("class", "").lower().split()
        if tag in self.SKIP or any(name in classes for name in self.QUOTE_CLASSES):
            if tag not in self.VOID:
                self.skipping = 1
            return
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if self.done:
            return
        if self.skipping:
            if tag not in self.VOID:
                self.skipping -= 1
            return
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not (self.done or self.skipping):
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    """The reply's text of an HTML-only mail."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return parser.text()


def strip_history(text: str) -> str:
    """The newest reply of a mail's text: quoted history and signature stripped."""
    from mailparser_reply import EmailReplyParser

    languages = [
        part.strip()
        for part in str(reply_address.setting("INBOUND_LANGUAGES")).split(",")
        if part.strip()
    ]
    text = (text or "").replace("\r\n", "\n")
    parsed = EmailReplyParser(languages=languages or ["en"]).read(text)
    newest = parsed.replies[0].body if parsed.replies else text
    lines = newest.split("\n")
    # A quote with no "wrote:" line above it: the trailing "> " lines are history too.
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    return "\n".join(lines).strip()


def _clean(text: str) -> str:
    """No control characters but line breaks and tabs (what the case page stores)."""
    return "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf")
    )


def reply_text(message) -> str:
    """The text a reply adds to its case."""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, UnicodeError, ValueError):
        content = body.get_payload(decode=True).decode("utf-8", "replace")
    if body.get_content_subtype() == "html":
        content = html_to_text(content)
    return _clean(strip_history(content))


def files_of(message) -> list:
    """The files attached to the message, checked as on the case page (Refusal otherwise);
    inline parts (a signature's logo) are left out."""
    uploads = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() != "attachment":
            continue
        data = part.get_payload(decode=True) or b""
        uploads.append(FileStorage(stream=io.BytesIO(data), filename=part.get_filename() or ""))
    try:
        return attachments.prepare(uploads)
    except attachments.Refused as refused:
        raise Refusal(
            f"550 5.7.1 {refused} Nothing was added to the case; send the reply again without "
            "that file, or add it on the case page"
        ) from None


def message_key(message, raw: bytes) -> str:
    """What makes two hand-overs of one message the same: its Message-ID, else a digest."""
    message_id = str(message.get("Message-ID", "") or "").strip()
    if message_id and len(message_id) <= 200:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode() if message_id else raw).hexdigest()


# --- taking a message -------------------------------------------------------------------


@dataclass
class _Claim:
    row: InboundMail | None
    answer: str | None  # an SMTP answer when this delivery must not add the reply


def _claim(key: str, case: Case, login: PortalUser, text: str) -> _Claim:
    """Claim the message's key before adding its reply, or say why not (already on the case,
    or another hand-over of it is being added right now)."""
    try:
        with write_txn():
            row = InboundMail.create(message_key=key, case=case, contact=login.contact_id)
        return _Claim(row, None)
    except IntegrityError:
        pass
    row = InboundMail.get(InboundMail.message_key == key)
    if row.status == "done":
        return _Claim(None, "250 2.0.0 Already received; it is on the case once")
    # A claim without its reply marked: is the reply on the case (the process died between
    # adding it and marking it)? Then it is done; else wait, or take over a stale claim.
    added = (
        CaseMessage.select()
        .where(
            (CaseMessage.case == row.case_id)
            & (CaseMessage.portal_user == login.id)
            & (CaseMessage.body == text)
            & (CaseMessage.created_at >= row.received_at)
        )
        .first()
    )
    if added is not None:
        _done(row, added, login)
        return _Claim(None, "250 2.0.0 Already received; it is on the case once")
    if utcnow() - row.received_at < STALE_CLAIM:
        return _Claim(None, "451 4.3.0 This reply is being added right now; try again later")
    with write_txn():
        taken = (
            InboundMail.update(received_at=utcnow())
            .where((InboundMail.id == row.id) & (InboundMail.received_at == row.received_at))
            .execute()
        )
    if not taken:
        return _Claim(None, "451 4.3.0 This reply is being added right now; try again later")
    return _Claim(row, None)


def _done(row: InboundMail, message: CaseMessage, login: PortalUser) -> None:
    with write_txn():
        InboundMail.update(status="done", case_message=message.id, done_at=utcnow()).where(
            InboundMail.id == row.id
        ).execute()
        audit.record(
            "case.replied_by_email",
            Case(id=row.case_id),
            actor=login,
            message_id=row.message_key,
        )


def receive(raw: bytes, recipient: str, sender: str = "") -> str:
    """Take one message handed to `recipient` (envelope `sender`); the SMTP answer."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if automatic(message, sender):
        log.info("inbound: automatic reply to %s dropped", recipient)
        return "250 2.0.0 Automatic reply ignored"
    try:
        answer = check_recipient(recipient)
        if answer:
            raise Refusal(answer)
        case, _contact = reply_address.read(recipient)
        login = sender_login(case, _from_address(message))
        text = reply_text(message)
        if not text:
            raise Refusal(
                "550 5.6.0 The reply has no text of its own above the quoted message; write "
                "the answer at the top and send it again"
            )
        if len(text) > MAX_TEXT:
            raise Refusal(
                f"550 5.3.4 The reply is longer than {MAX_TEXT:,} characters; shorten it, or "
                "attach the rest as a file"
            )
        files = files_of(message)
    except Refusal as refusal:
        log.info("inbound: refused a message to %s: %s", recipient, refusal.reply)
        return refusal.reply
    claim = _claim(message_key(message, raw), case, login, text)
    if claim.answer:
        return claim.answer
    try:
        added = cases.reply_as_customer(case, login, text, files=files)
    except Exception:
        log.exception("inbound: adding a reply to case %s failed", case.number)
        with write_txn():
            InboundMail.delete().where(InboundMail.id == claim.row.id).execute()
        return TEMPORARY
    _done(claim.row, added, login)
    log.info("inbound: reply added to case %s", case.number)
    return "250 2.0.0 Added to the case, thank you"


# --- the SMTP server --------------------------------------------------------------------


class Handler:
    """aiosmtpd's handler: each check runs on a thread of its own, in the app's context and
    on a database connection of its own, so a slow database never stalls the server."""

    def __init__(self, app):
        self.app = app

    def _run(self, function, *args) -> str | None:
        with self.app.app_context():
            db.connect(reuse_if_open=True)
            try:
                return function(*args)
            except Exception:
                log.exception("inbound: %s failed", function.__name__)
                return TEMPORARY
            finally:
                if not db.is_closed():
                    db.close()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if envelope.rcpt_tos:
            # One case per message, so one answer to DATA fits it; the server sends the
            # rest again in a message of its own.
            return "452 4.5.3 One reply address per message; send the others separately"
        answer = await server.loop.run_in_executor(None, self._run, check_recipient, address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return await server.loop.run_in_executor(
            None, self._run, receive, raw, envelope.rcpt_tos[0], envelope.mail_from or ""
        )


def controller(app, host: str | None = None, port: int | None = None):
    """An aiosmtpd Controller serving `Handler` (started by the caller)."""
    from aiosmtpd.controller import Controller

    with app.app_context():
        host = host or reply_address.setting("INBOUND_HOST")
        port = int(port or reply_address.setting("INBOUND_PORT"))
        limit = int(reply_address.setting("INBOUND_MAX_BYTES"))
        name = reply_address.domain()
    return Controller(
        Handler(app),
        hostname=host,
        port=port,
        server_hostname=name,
        data_size_limit=limit,
        ident=f"{name} replies",
    )


def serve(stop: threading.Event | None = None) -> None:
    """Run the server until SIGTERM or SIGINT (`flask inbound`)."""
    app = current_app._get_current_object()
    stop = stop or threading.Event()
    server = controller(app)
    server.start()
    log.info(
        "inbound: taking replies on %s:%s for @%s",
        server.hostname,
        server.port,
        reply_address.domain(),
    )
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
