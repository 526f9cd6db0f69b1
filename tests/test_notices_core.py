"""The base of customer mail choices (issue 18): extra outbox headers, who gets a topic."""

from urllib.parse import urlsplit

import pytest

from portal.db import write_txn
from portal.models import OutboxMessage
from portal.services import notices, outbox

from . import factories


def test_extra_headers_are_sent_as_queued(app, mailbox):
    contact = factories.portal_user(email="ap@example.com").contact
    with write_txn():
        message = outbox.queue(
            "ap@example.com",
            "Statement",
            "Your statement.",
            headers=notices.headers(contact, "statement"),
        )
    outbox.deliver_due([message.id])
    sent = mailbox.wait_for(1)[0]
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = sent["List-Unsubscribe"].strip("<>")
    assert notices.read_unsubscribe(link.rsplit("/", 1)[1]) == (contact, "statement")


@pytest.mark.parametrize(
    "headers",
    [{"Bcc": "someone@example.com"}, {"Reply-To": "a@example.com\r\nBcc: b@example.com"}],
)
def test_unknown_or_injected_headers_are_refused(app, headers):
    with pytest.raises(ValueError), write_txn():
        outbox.queue("ap@example.com", "Hi", "Hello.", headers=headers)
    assert OutboxMessage.select().count() == 0


def test_recipients_follow_billing_flag_choices_sites_and_status(app):
    customer = factories.customer()
    north, south = factories.site(customer), factories.site(customer)
    whole = factories.portal_user(customer).contact
    scoped = factories.portal_user(customer, sites=[north]).contact
    not_billing = factories.portal_user(customer, billing=False).contact
    disabled = factories.portal_user(customer, status="disabled").contact
    opted_out = factories.portal_user(customer).contact
    notices.set_choice(opted_out, "reminder", False)

    assert notices.recipients(customer.id, "reminder") == [whole]
    assert notices.recipients(customer.id, "reminder", site_id=north.id) == [whole, scoped]
    assert notices.recipients(customer.id, "reminder", site_id=south.id) == [whole]
    assert notices.recipients(customer.id, "quote_published") == [whole, not_billing, opted_out]
    assert not notices.wants(not_billing, "statement")
    assert notices.wants(not_billing, "case_updates")
    assert notices.wants(opted_out, "statement") and not notices.wants(opted_out, "reminder")
    assert disabled not in notices.recipients(customer.id, "statement")


def test_an_unsubscribe_token_is_signed(app):
    contact = factories.portal_user().contact
    token = notices.unsubscribe_token(contact, "reminder")
    assert notices.read_unsubscribe(token) == (contact, "reminder")
    assert notices.read_unsubscribe(token[:-2] + "xx") is None


def test_one_click_unsubscribe_turns_off_one_topic_without_sign_in(app):
    contact = factories.portal_user(email="ap@example.com").contact
    client = app.test_client()
    path = urlsplit(notices.unsubscribe_url(contact, "reminder")).path
    page = client.get(path)
    assert page.status_code == 200 and b"ap@example.com" in page.data
    assert notices.wants(contact, "reminder")  # opening the link changes nothing
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 204
    assert notices.choices(contact) == {t: t != "reminder" for t in notices.TOPICS}
    assert client.post(path[:-3] + "abc").status_code == 404
