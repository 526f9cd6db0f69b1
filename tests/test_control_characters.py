"""B9: a control character in text that can reach an email header is refused next to the
field where the payer or customer types it (a payer's name goes into the receipt's greeting
and the office's alert; a question's subject becomes the case's subject), and nothing is
written."""

import pytest

from portal.models import Case, Payment

from . import factories
from .conftest import login

CONTROLS = ["Pat\x07", "Pat\x1b[2J", "Pat\x7f", "Pat\u0090", "Pat\u2028Smith"]


@pytest.mark.parametrize("name", CONTROLS)
def test_b9_quick_pay_refuses_a_payer_name_with_control_characters(client, name):
    invoice, code = factories.invoice(total_cents=10_000)
    assert client.post("/pay/", data={"number": invoice.number, "secret": code}).status_code == 303
    response = client.post(
        "/pay/invoice",
        data={
            "amount": "100.00",
            "payer_name": name,
            "payer_email": "pat@example.com",
            "provider": "offline",
        },
    )
    assert response.status_code == 422
    assert "Remove the control characters" in response.text
    assert Payment.select().count() == 0


def test_b9_signed_in_payment_refuses_a_payer_name_with_control_characters(client):
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=10_000)
    login(client, user.email)
    response = client.post(
        "/invoices/pay",
        data={
            "line": [f"{invoice.public_id}:10000"],
            "payer_name": "Pat\x07",
            "payer_email": user.email,
            "provider": "offline",
        },
    )
    assert response.status_code == 422 and "Remove the control characters" in response.text
    assert 'value="Pat' in response.text  # what was typed is kept (the BEL aside)
    assert Payment.select().count() == 0


def test_b9_question_this_invoice_refuses_a_subject_with_control_characters(client):
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer)
    login(client, user.email)
    response = client.post(
        f"/invoices/{invoice.public_id}/question",
        data={"subject": "Wrong\x1btotal", "message": "The total looks wrong."},
    )
    assert response.status_code == 422 and "Remove the control characters" in response.text
    assert "The total looks wrong." in response.text
    assert Case.select().count() == 0
