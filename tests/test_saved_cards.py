"""Saved cards (issue 14): with explicit consent a login saves a card at Stripe for its
company (Stripe's page in setup mode), sees and removes it in My account, and pays with it in
one step. Against the suite's own Stripe on loopback (tests/stripe_fake)."""

from portal.models import AuditLog, Customer, Invoice, Payment, SavedMethod

from . import factories, stripe_fixtures
from .conftest import login

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
app = stripe_fixtures.stripe_app


def _save_card(client, stripe_env) -> SavedMethod:
    response = client.post("/account/cards", data={"consent": "yes"})
    assert response.status_code == 303
    session_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    back = stripe_env.complete(session_id, "save_card")
    path = "/" + back.split("://", 1)[1].split("/", 1)[1]
    assert client.get(path).status_code == 303
    return SavedMethod.select().order_by(SavedMethod.id.desc()).get()


def test_save_a_card_with_consent_see_it_and_remove_it(app, client, stripe_env):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example")
    login(client, user.email)
    page = client.get("/account/").get_data(as_text=True)
    assert "Saved cards" in page and "No saved cards" in page
    refused = client.post("/account/cards", data={})
    assert refused.status_code == 422 and "Tick the box" in refused.get_data(as_text=True)
    card = _save_card(client, stripe_env)
    assert (card.last4, card.customer_id, card.saved_by_id) == ("4242", customer.id, user.id)
    assert "Acme Manufacturing" in card.consent
    assert Customer.get_by_id(customer.id).stripe_customer_id.startswith("cus_")
    listed = stripe_env.client().v1.payment_methods.list(
        params={"customer": Customer.get_by_id(customer.id).stripe_customer_id, "type": "card"}
    )
    assert [m.id for m in listed.data] == [card.method_id]
    assert "•••• 4242" in client.get("/account/").get_data(as_text=True)
    assert AuditLog.select().where(AuditLog.action == "payment_method.saved").exists()

    # Another company's login cannot remove it (404); its own login can.
    other = factories.portal_user(factories.customer(), email="x@other.example")
    stranger = app.test_client()
    login(stranger, other.email)
    assert stranger.post("/account/cards/remove", data={"saved_method": card.id}).status_code == 404
    assert client.post("/account/cards/remove", data={"saved_method": card.id}).status_code == 303
    assert not SavedMethod.get_by_id(card.id).active
    assert "No saved cards" in client.get("/account/").get_data(as_text=True)


def test_pay_several_invoices_with_a_saved_card_in_one_step(app, client, stripe_env, mailbox):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example")
    first, _ = factories.invoice(customer, total_cents=30_000)
    second, _ = factories.invoice(customer, total_cents=12_500)
    login(client, user.email)
    card = _save_card(client, stripe_env)
    review = client.post("/invoices/review", data={"invoice": [first.id, second.id]})
    assert "Visa •••• 4242 (saved card)" in review.get_data(as_text=True)
    response = client.post(
        "/invoices/pay",
        data={
            "line": [f"{first.id}:30000", f"{second.id}:12500"],
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": f"saved-{card.id}",
        },
    )
    assert response.status_code == 303 and "/payments/" in response.headers["Location"]
    payment = Payment.get()
    assert payment.status == "applied" and payment.provider_reference.startswith("pi_")
    assert Invoice.get_by_id(first.id).balance_cents == 0
    assert Invoice.get_by_id(second.id).balance_cents == 0
    stripe_env.wait_idle()  # Stripe's payment_intent.succeeded arrives too: still once
    assert Payment.select().count() == 1
    assert "Receipt" in client.get(response.headers["Location"]).get_data(as_text=True)
    # A card of another company cannot be chosen.
    other = factories.customer()
    foreign = SavedMethod.create(customer=other, method_id="pm_foreign", last4="1111")
    refused = client.post(
        "/invoices/pay",
        data={
            "line": [f"{first.id}:100"],
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": f"saved-{foreign.id}",
        },
    )
    assert refused.status_code in (400, 422)
