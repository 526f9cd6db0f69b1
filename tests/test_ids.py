"""Opaque ids in customer URLs (checklist E3; E2, the company/site scope, stays the real
control and is tested in test_authz_matrix)."""

import re

import pytest

from portal.db import utcnow
from portal.ids import TOKEN_LENGTH, OpaqueIds
from portal.models import Case, Payment

from . import factories
from .conftest import login

KEY = "a-test-secret-key-for-opaque-ids-0123456789"


def test_tokens_are_unrelated_fixed_length_and_round_trip():
    """E3 unit: consecutive ids give unrelated tokens of one length; each decodes back only
    as the kind it was made for; another key makes other tokens."""
    ids = OpaqueIds(KEY)
    tokens = [ids.encode("invoice", n) for n in range(1, 201)]
    assert len(set(tokens)) == 200
    assert all(re.fullmatch(rf"[a-z2-7]{{{TOKEN_LENGTH}}}", t) for t in tokens)
    assert [ids.decode("invoice", t) for t in tokens] == list(range(1, 201))
    # Neighbouring ids share no common prefix worth the name (a sequential id would).
    assert max(len(_common_prefix(a, b)) for a, b in zip(tokens, tokens[1:], strict=False)) < 6
    assert ids.decode("quote", tokens[0]) is None  # tagged with its kind
    assert OpaqueIds(KEY + "x").encode("invoice", 1) != tokens[0]
    assert OpaqueIds(KEY).encode("invoice", 1) == tokens[0]  # stable for one key


@pytest.mark.parametrize(
    "token",
    ["", "1", "a" * TOKEN_LENGTH, "A" * TOKEN_LENGTH, "0" * TOKEN_LENGTH, "ab" * 20, None, 42],
)
def test_made_up_tokens_decode_to_nothing(token):
    """A guessed, mistyped or truncated token names no row (the route then answers 404)."""
    assert OpaqueIds(KEY).decode("invoice", token) is None


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_models_expose_a_public_id(app):
    """E3 unit: the rows customers' URLs name expose `public_id`, not their id."""
    customer = factories.customer()
    user = factories.portal_user(customer)
    invoice, _ = factories.invoice(customer)
    rows = [
        user,
        invoice,
        factories.rfq(customer),
        factories.quote(customer),
        factories.order(customer),
        factories.payment(customer),
        Case.create(number="CS-1", customer=customer, subject="Help", created_at=utcnow()),
    ]
    for row in rows:
        assert len(row.public_id) == TOKEN_LENGTH and str(row.id) != row.public_id
    assert len({row.public_id for row in rows}) == len(rows)


def test_customer_pages_link_by_public_id_and_sequential_urls_are_gone(client):
    """E3: every link a customer sees names rows by token; the old numeric URL is a 404, and
    a token of another kind, or another company's token, is a 404 too (E2)."""
    customer = factories.customer()
    user = factories.portal_user(customer)
    invoice, _ = factories.invoice(customer, number="INV-E3")
    quote = factories.quote(customer)
    order = factories.order(customer)
    payment = factories.payment(customer)
    from portal.models import PaymentApplication

    PaymentApplication.create(payment=payment, invoice=invoice, amount_cents=1000)
    Case.create(
        number="CS-E3", customer=customer, subject="Help", invoice=invoice, created_at=utcnow()
    )
    theirs, _ = factories.invoice(factories.customer())
    login(client, user.email)
    numeric = re.compile(
        r'(?:href|action|hx-get|hx-post)="/(?:invoices|quotes|quotes/requests|cases|orders|'
        r'statements/payments|company/users)/\d+["/?]'
    )
    for page in (
        "/",
        "/invoices/?status=all",
        "/quotes/",
        "/orders/",
        "/cases/",
        "/statements/payments",
        "/company/",
        f"/invoices/{invoice.public_id}",
    ):
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.get_data(as_text=True)
        assert not numeric.search(html), (page, numeric.search(html))
    html = client.get("/").get_data(as_text=True)
    assert f'href="/invoices/{invoice.public_id}"' in html
    assert client.get(f"/quotes/{quote.public_id}").status_code == 200
    assert client.get(f"/orders/{order.public_id}").status_code == 200
    assert client.get(f"/statements/payments/{payment.public_id}").status_code == 200
    assert client.get(f"/invoices/{invoice.id}").status_code == 404
    assert client.get(f"/invoices/{quote.public_id}").status_code == 404  # a quote's token
    assert client.get(f"/invoices/{theirs.public_id}").status_code == 404  # E2
    assert client.get(f"/cases/new?invoice={invoice.id}").status_code == 404
    assert "INV-E3" in client.get(f"/cases/new?invoice={invoice.public_id}").get_data(as_text=True)


def test_public_ids_follow_the_secret_key(make_app):
    """Two installations (two keys) give the same row different tokens."""
    one = make_app(SECRET_KEY="k" * 40)
    two = make_app(SECRET_KEY="j" * 40)
    assert one.extensions["opaque_ids"].encode("invoice", 7) != two.extensions["opaque_ids"].encode(
        "invoice", 7
    )
    assert Payment.KIND == "payment"
