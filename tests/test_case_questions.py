"""Questions about an invoice or an order end on one case, however often the form is sent."""

import re
import threading

import pytest

from portal.models import Case, CaseMessage

from . import factories
from .conftest import login


@pytest.fixture
def buyer(app):
    return factories.portal_user(factories.customer(), email="pat@acme.example")


def test_question_about_an_order_ends_on_the_case_and_a_double_click_opens_one(client, buyer):
    """The form carries a token; its second post answers with the case the first opened."""
    order = factories.order(buyer.contact.customer)
    login(client, "pat@acme.example")
    page = client.get(f"/cases/new?order={order.public_id}").get_data(as_text=True)
    key = re.search(r'name="request_key" type="hidden" value="([^"]+)"', page).group(1)
    data = {"subject": "Short shipped", "body": "One carton missing.", "order": order.public_id}
    first = client.post("/cases/new", data={**data, "request_key": key})
    second = client.post("/cases/new", data={**data, "request_key": key})
    case = Case.get()
    assert Case.select().count() == 1 and CaseMessage.select().count() == 1
    assert first.headers["Location"] == second.headers["Location"] == f"/cases/{case.public_id}"
    shown = client.get(first.headers["Location"]).get_data(as_text=True)
    assert f"Case {case.number} was already opened from this form." in shown
    assert case.order_id == order.id


def test_the_same_token_posted_at_the_same_instant_opens_one_case(app, buyer):
    """Four posts of one form at once (a frantic double click): one case."""
    key = "k" * 32
    clients = [app.test_client() for _ in range(4)]
    for c in clients:
        login(c, "pat@acme.example")
    answers = []

    def post(c):
        answers.append(
            c.post(
                "/cases/new", data={"subject": "Hi", "body": "Hello", "request_key": key}
            ).status_code
        )

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [303] * 4
    assert Case.select().count() == 1


def test_invoice_question_twice_is_one_case(client, buyer):
    """The invoice's question box sends no token: the same question within a minute is the
    same case; a different question is a new one."""
    invoice, _ = factories.invoice(buyer.contact.customer)
    login(client, "pat@acme.example")
    url = f"/invoices/{invoice.public_id}/question"
    data = {"subject": "Wrong price", "message": "Line 2 should be 9.50"}
    assert client.post(url, data=data).status_code == 303
    assert client.post(url, data=data).status_code == 303
    assert Case.select().count() == 1
    client.post(url, data={"subject": "Wrong price", "message": "And line 3"})
    assert Case.select().count() == 2
