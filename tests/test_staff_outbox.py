"""The email outbox page: sent and failed emails, and retrying a failed one."""

from portal.db import write_txn
from portal.models import AuditLog, OutboxMessage
from portal.services import outbox

from . import factories
from .conftest import staff_login

URL = "/staff/outbox/"


def test_failed_email_is_listed_and_retried_to_the_smtp_server(client, mailbox):
    """A failed message shows its error; 'Send again' delivers it after the request commits."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    with write_txn():
        message = outbox.queue("pat@example.com", "Your receipt", "Thanks")
        sent = outbox.queue("kim@example.com", "Hello", "Body")
    OutboxMessage.update(status="failed", attempts=5, last_error="SMTP down").where(
        OutboxMessage.id == message.id
    ).execute()
    OutboxMessage.update(status="sent").where(OutboxMessage.id == sent.id).execute()

    html = client.get(URL + "?status=failed").get_data(as_text=True)
    assert "Your receipt" in html and "SMTP down" in html and "Hello" not in html
    assert "Hello" in client.get(URL + "?status=sent").get_data(as_text=True)

    response = client.post(URL + f"{message.id}/retry")
    assert response.status_code == 303
    (arrived,) = mailbox.wait_for(1)
    assert arrived["To"] == "pat@example.com" and arrived["Subject"] == "Your receipt"
    assert OutboxMessage.get_by_id(message.id).status == "sent"
    assert AuditLog.select().where(AuditLog.action == "outbox.retried").count() == 1
    client.post(URL + f"{sent.id}/retry")
    assert len(mailbox.messages) == 1  # a sent email is not sent again


def test_links_with_tokens_are_hidden_from_staff(client):
    """Staff reading an invitation cannot use its link (the token is hidden)."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    token = "eyJ1IjoxLCJzIjoiYWJjIn0.ZZZZZZ.abcdefghijklmnopqrstuvwxyz"
    with write_txn():
        message = outbox.queue("pat@example.com", "Invite", f"Set it: http://x/invitation/{token}")
    html = client.get(URL + str(message.id)).get_data(as_text=True)
    assert token not in html and "http://x/invitation/[link hidden]" in html
