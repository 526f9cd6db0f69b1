"""Replies by email (issue 18): a case email's signed Reply-To, and `flask inbound`'s SMTP
server adding a reply to its case, refusing anything else with a 550 that changes nothing."""

import os
import re
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from portal.models import AuditLog, Case, CaseMessage, OutboxMessage
from portal.models_inbound import InboundMail
from portal.services import cases, inbound, notices, outbox, reply_address

from . import factories
from .conftest import free_port

DOMAIN = "shop.example"


@pytest.fixture
def app(build_app):
    return build_app(REPLY_BY_EMAIL=True, MAIL_FROM=f"Northwind <portal@{DOMAIN}>")


@pytest.fixture
def server(app):
    """The inbound SMTP server `flask inbound` runs, on a free loopback port."""
    running = inbound.controller(app, "127.0.0.1", free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def buyer(app):
    customer = factories.customer(name="Acme Manufacturing")
    return factories.portal_user(customer, email="pat@acme.example")


def case_email(mailbox, user, status="waiting"):
    """A case of `user` answered by staff; the case email that arrived and its Reply-To."""
    case = cases.create_case(user, "Damaged pallet", "Two boxes arrived crushed.")
    mailbox.clear()
    cases.staff_reply(case, factories.staff(), "A replacement ships today.", status)
    outbox.deliver_due()  # services called outside a request leave their emails queued
    message = [m for m in mailbox.wait_for(1) if m["To"] == user.email][-1]
    return case, message


def reply(server, to, text, sender="pat@acme.example", message_id=None, html=None, **headers):
    """Send a reply into the running server over SMTP; the server's answer to DATA."""
    message = EmailMessage()
    message["From"] = f"Pat Buyer <{sender}>"
    message["To"] = to
    message["Subject"] = "Re: [CASE] Damaged pallet"
    message["Message-ID"] = message_id or f"<{time.monotonic_ns()}@mail.acme.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    if html is None:
        message.set_content(text)
    else:
        message.set_content(html, subtype="html")
    with smtplib.SMTP(server.hostname, server.port, timeout=10) as smtp:
        return smtp.send_message(message, from_addr=sender, to_addrs=[to])


def state():
    """What a refused message must leave as it was."""
    return (
        Case.select().count(),
        CaseMessage.select().count(),
        InboundMail.select().count(),
        [(c.id, c.status) for c in Case.select().order_by(Case.id)],
    )


QUOTED = """Thanks, it arrived this morning.
Can you send the delivery note too?

Best regards,
Pat Buyer
Purchasing, Acme

On Mon, Dec 7, 2026 at 10:02 AM Northwind <portal@shop.example> wrote:
> Hello Pat,
>
> A replacement ships today.
"""


def test_case_email_carries_a_signed_reply_to_and_one_click_unsubscribe(app, mailbox, buyer):
    """The Reply-To names the case and the recipient, signed; its local part fits 64."""
    case, message = case_email(mailbox, buyer)
    address = message["Reply-To"]
    assert re.fullmatch(rf"reply\+[0-9a-z]+\.[0-9a-z]+\.[a-z2-7]{{24}}@{DOMAIN}", address)
    assert len(address.partition("@")[0]) <= 64
    assert reply_address.read(address) == (case, buyer.contact)
    assert reply_address.read(address.upper()) == (case, buyer.contact)  # case folded
    assert message["List-Unsubscribe"].startswith("<http://localhost/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_no_reply_to_while_replies_by_email_are_off(build_app, mailbox):
    """Without PORTAL_REPLY_BY_EMAIL, replies go to the sender address as before."""
    build_app()
    user = factories.portal_user(email="pat@acme.example")
    _case, message = case_email(mailbox, user)
    assert message["Reply-To"] is None


def test_a_contact_that_turned_case_updates_off_gets_no_case_email(app, mailbox, buyer):
    """notices.wants: a contact that said no to case updates is not emailed about them."""
    notices.set_choice(buyer.contact, "case_updates", False)
    case = cases.create_case(buyer, "Damaged pallet", "Two boxes arrived crushed.")
    mailbox.clear()
    cases.staff_reply(case, factories.staff(), "A replacement ships today.", "waiting")
    outbox.deliver_due()
    assert not OutboxMessage.select().where(OutboxMessage.kind == "case_update").exists()
    assert "A replacement" not in "".join(m.get_content() for m in mailbox.messages)


def test_a_reply_sent_into_the_server_lands_on_the_case(app, server, mailbox, buyer):
    """A reply handed to the running server over SMTP is on the case, as the contact, with
    its quoted history and signature stripped; the case goes back to the office."""
    case, message = case_email(mailbox, buyer)
    refused = reply(server, message["Reply-To"], QUOTED)
    assert refused == {}
    added = CaseMessage.select().where(CaseMessage.case == case).order_by(CaseMessage.id)[-1]
    assert added.portal_user_id == buyer.id and not added.internal
    assert added.body == "Thanks, it arrived this morning.\nCan you send the delivery note too?"
    assert Case.get_by_id(case.id).status == "open"
    assert InboundMail.get().status == "done" and InboundMail.get().case_message_id == added.id
    assert AuditLog.get(AuditLog.action == "case.replied_by_email").actor_id == buyer.id
    assert AuditLog.get(AuditLog.action == "case.customer_replied").object_id == str(case.id)


def test_the_same_message_handed_over_twice_is_added_once(app, server, mailbox, buyer):
    """A mail server that delivers one Message-ID twice gets 250 twice; one message."""
    case, message = case_email(mailbox, buyer)
    before = CaseMessage.select().where(CaseMessage.case == case).count()
    for _ in range(2):
        assert reply(server, message["Reply-To"], "Got it.", message_id="<dup-1@acme>") == {}
    assert CaseMessage.select().where(CaseMessage.case == case).count() == before + 1
    assert InboundMail.select().count() == 1


def test_an_html_only_reply_is_taken_without_its_quote(app, server, mailbox, buyer):
    """A text/html-only mail: its text, without Gmail's quoted block or markup."""
    case, message = case_email(mailbox, buyer)
    html = (
        "<html><body><div dir='ltr'>Yes, <b>Friday</b> works.<br>Pat</div>"
        "<div class='gmail_quote'><div>On Mon, Northwind wrote:</div>"
        "<blockquote>A replacement ships today.</blockquote></div></body></html>"
    )
    assert reply(server, message["Reply-To"], "", html=html) == {}
    added = CaseMessage.select().where(CaseMessage.case == case).order_by(CaseMessage.id)[-1]
    assert added.body == "Yes, Friday works.\nPat"


def test_an_attached_file_is_kept_and_a_refused_one_refuses_the_reply(app, server, mailbox, buyer):
    """Attachments go through the case page's checks: a text file is kept; a renamed
    file refuses the whole reply with the reason, adding nothing."""
    case, message = case_email(mailbox, buyer)
    with smtplib.SMTP(server.hostname, server.port, timeout=10) as smtp:
        for name, data in (("notes.txt", b"lot 4471\n"), ("photo.png", b"not a png\n")):
            mail = EmailMessage()
            mail["From"] = "pat@acme.example"
            mail["To"] = message["Reply-To"]
            mail["Subject"] = "Re: case"
            mail["Message-ID"] = f"<{name}@acme>"
            mail.set_content("Here is the file.")
            mail.add_attachment(data, maintype="text", subtype="plain", filename=name)
            if name == "notes.txt":
                smtp.send_message(mail)
                added = CaseMessage.select().order_by(CaseMessage.id.desc()).first()
                files = cases.files_of([added])[added.id]
                assert [f.filename for f in files] == ["notes.txt"]
            else:
                before = state()
                with pytest.raises(smtplib.SMTPDataError) as refused:
                    smtp.send_message(mail)
                assert refused.value.smtp_code == 550
                assert b"photo.png" in refused.value.smtp_error
                assert state() == before


def _forged(address: str) -> str:
    local, _, host = address.partition("@")
    prefix, _, signature = local.rpartition(".")
    return f"{prefix}.{'a' if signature[0] != 'a' else 'b'}{signature[1:]}@{host}"


def _other_case(address: str) -> str:
    local, _, host = address.partition("@")
    case_id, contact_id, signature = local.removeprefix("reply+").split(".")
    other = reply_address._b36(int(case_id, 36) + 1)
    return f"reply+{other}.{contact_id}.{signature}@{host}"


@pytest.mark.parametrize(
    "how, words",
    [
        ("unknown sender", b"may not reply"),
        ("colleague of another customer", b"may not reply"),
        ("colleague outside the case's site", b"may not reply"),
        ("disabled login", b"may not reply"),
        ("forged signature", b"not valid"),
        ("another case's id", b"not valid"),
        ("closed case", b"is closed"),
        ("not a reply address", b"No such address"),
    ],
)
def test_refused_replies_change_nothing_and_open_no_case(app, server, mailbox, buyer, how, words):
    """Unknown or unauthorised senders, forged addresses and closed cases get a 550 naming
    the reason; no message, no case, no claim is written, and the case keeps its status."""
    site_a, site_b = factories.site(buyer.contact.customer), factories.site(buyer.contact.customer)
    case, message = case_email(mailbox, buyer)
    Case.update(site=site_a).where(Case.id == case.id).execute()
    factories.customer()  # a later case id would be another customer's: nothing to find
    to, sender = message["Reply-To"], "pat@acme.example"
    if how == "unknown sender":
        sender = "stranger@elsewhere.example"
    elif how == "colleague of another customer":
        sender = factories.portal_user(email="eve@other.example").email
    elif how == "colleague outside the case's site":
        sender = factories.portal_user(
            buyer.contact.customer, email="sam@acme.example", sites=[site_b]
        ).email
    elif how == "disabled login":
        buyer.status = "disabled"
        buyer.save()
    elif how == "forged signature":
        to = _forged(to)
    elif how == "another case's id":
        to = _other_case(to)
    elif how == "closed case":
        cases.staff_reply(case, factories.staff(), "", "closed")
    elif how == "not a reply address":
        to = f"sales@{DOMAIN}"
    before = state()
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)) as refused:
        reply(server, to, "Please reopen.", sender=sender)
    if isinstance(refused.value, smtplib.SMTPRecipientsRefused):
        code, text = refused.value.recipients[to]
    else:
        code, text = refused.value.smtp_code, refused.value.smtp_error
    assert code == 550 and words in text
    assert state() == before


def test_a_colleague_who_can_see_the_case_may_reply(app, server, mailbox, buyer):
    """An active login of the same customer with the cases role sees the case: it may reply,
    and the reply is theirs."""
    colleague = factories.portal_user(buyer.contact.customer, email="lee@acme.example")
    case, message = case_email(mailbox, buyer)
    assert reply(server, message["Reply-To"], "I can confirm.", sender=colleague.email) == {}
    added = CaseMessage.select().where(CaseMessage.case == case).order_by(CaseMessage.id)[-1]
    assert added.portal_user_id == colleague.id and added.body == "I can confirm."


def test_an_out_of_office_notice_is_dropped(app, server, mailbox, buyer):
    """Auto-Submitted mail is taken (no bounce loop) and adds nothing."""
    case, message = case_email(mailbox, buyer)
    before = state()
    assert reply(server, message["Reply-To"], "I am away.", Auto_Submitted="auto-replied") == {}
    assert state() == before


def test_only_quoted_text_is_refused(app, server, mailbox, buyer):
    """A reply with nothing above the quote says so and adds nothing."""
    case, message = case_email(mailbox, buyer)
    before = state()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        reply(server, message["Reply-To"], "> A replacement ships today.\n")
    assert refused.value.smtp_code == 550 and b"no text of its own" in refused.value.smtp_error
    assert state() == before


def test_flask_inbound_serves_the_procfile_command(app, mailbox, buyer, tmp_path):
    """`flask --app portal inbound` (the Procfile's entry) takes a reply on its port."""
    lines = dict(
        line.split(":", 1)
        for line in (Path(__file__).parents[1] / "Procfile").read_text().splitlines()
        if line
    )
    assert lines["inbound"].strip() == "flask --app portal inbound"
    case, message = case_email(mailbox, buyer)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update(
        PORTAL_DATABASE_URL=app.config["DATABASE_URL"],
        PORTAL_SECRET_KEY=app.config["SECRET_KEY"],
        PORTAL_INSTANCE_PATH=str(tmp_path / "inbound-instance"),
        PORTAL_MAIL_FROM=app.config["MAIL_FROM"],
        PORTAL_MAIL_URL=app.config["MAIL_URL"],
        PORTAL_INBOUND_PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "portal", "inbound"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "flask inbound did not start"
                time.sleep(0.2)
        server = type("Server", (), {"hostname": "127.0.0.1", "port": port})
        assert reply(server, message["Reply-To"], "Sent through the process.") == {}
    finally:
        process.terminate()
        process.wait(timeout=20)
    bodies = [m.body for m in CaseMessage.select().where(CaseMessage.case == case)]
    assert bodies[-1] == "Sent through the process."


def test_the_inbound_table_matches_its_migration(app):
    """models_inbound and migration 0035 agree, with the unique key that de-duplicates."""
    from portal.db import db

    columns = {c.name for c in db.get_columns("inbound_mail")}
    assert columns == {f.column_name for f in InboundMail._meta.sorted_fields}
    assert ["message_key"] in [i.columns for i in db.get_indexes("inbound_mail") if i.unique]
