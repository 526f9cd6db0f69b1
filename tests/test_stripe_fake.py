"""The suite's Stripe itself: Stripe's official package against localstripe plus the fake's
Checkout Sessions, hosted page and signed webhooks, all on loopback."""

import json
import time
import urllib.request

import pytest
import stripe

from . import stripe_fixtures
from .stripe_fake import StripeFake

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env


class Inbox:
    """A webhook endpoint as a callable: verifies with Stripe's own verifier, keeps events."""

    def __init__(self, secret):
        self.secret = secret
        self.events = []
        self.refused = []

    def __call__(self, body, headers):
        try:
            event = stripe.Webhook.construct_event(
                body, headers.get("Stripe-Signature"), self.secret
            )
        except stripe.SignatureVerificationError as exc:
            self.refused.append(str(exc))
            return 400
        self.events.append(event)
        return 200

    def types(self):
        return [e.type for e in self.events]


@pytest.fixture
def inbox(stripe_env):
    inbox = Inbox(stripe_env.webhook_secret)
    stripe_env.deliver_to = inbox
    return inbox


def session_params(**overrides):
    params = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 12500,
                    "product_data": {"name": "Invoice INV-1"},
                },
            },
            {
                "quantity": 2,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 250,
                    "product_data": {"name": "Invoice INV-2"},
                },
            },
        ],
        "client_reference_id": "attempt-1",
        "metadata": {"attempt": "attempt-1"},
        "payment_intent_data": {"metadata": {"attempt": "attempt-1"}},
        "success_url": "http://portal.test/back?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://portal.test/back?cancelled=1",
        "customer_email": "payer@example.com",
    }
    params.update(overrides)
    return params


def get(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode()


def test_a_session_has_stripes_shape(stripe_env):
    session = stripe_env.client().v1.checkout.sessions.create(params=session_params())
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.mode, session.status, session.payment_status) == ("payment", "open", "unpaid")
    assert (session.amount_total, session.currency) == (13000, "usd")
    assert session.metadata.to_dict() == {"attempt": "attempt-1"}
    assert session.client_reference_id == "attempt-1"
    assert session.customer_email == "payer@example.com"
    assert session.payment_intent is None and session.livemode is False
    assert session.expires_at > time.time() + 23 * 3600
    assert session.url == f"{stripe_env.api_base}/c/pay/{session.id}"
    status, page = get(session.url)
    assert status == 200
    assert stripe_env.merchant_name in page and "130.00 USD" in page
    for label in ("Pay with card", "Pay by bank account (settles later)", "Decline", "Cancel"):
        assert f">{label}</button>" in page


def test_stripes_module_level_configuration_reaches_the_fake_too(stripe_env, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", stripe_env.secret_key)
    monkeypatch.setattr(stripe, "api_base", stripe_env.api_base)
    session = stripe.checkout.Session.create(**session_params())
    assert stripe.checkout.Session.retrieve(session.id).status == "open"


def test_card_payment_end_to_end_with_a_signed_webhook(stripe_env, inbox):
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())

    location = stripe_env.complete(session.id, "card")

    assert location == f"http://portal.test/back?session_id={session.id}"
    assert inbox.types() == ["checkout.session.completed"]
    event = inbox.events[0]
    assert event.api_version and event.livemode is False and event.id.startswith("evt_")
    done = event.data.object
    assert (done.id, done.status, done.payment_status) == (session.id, "complete", "paid")
    assert done.metadata["attempt"] == "attempt-1" and done.url is None
    found = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    intent = found.payment_intent
    assert (intent.id, intent.status, intent.amount, intent.currency) == (
        done.payment_intent,
        "succeeded",
        13000,
        "usd",
    )
    assert intent.metadata["attempt"] == "attempt-1"
    assert isinstance(intent.latest_charge, str)
    # The page is gone once paid.
    with pytest.raises(urllib.error.HTTPError) as gone:
        get(session.url)
    assert gone.value.code == 410


def test_a_real_http_endpoint_receives_the_webhook(stripe_env):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        stripe_env.deliver_to = f"http://127.0.0.1:{server.server_port}/payments/stripe/webhook"
        session = stripe_env.client().v1.checkout.sessions.create(params=session_params())
        stripe_env.complete(session.id, "card")
    finally:
        server.shutdown()
    (body, signature), *_ = received
    event = stripe.Webhook.construct_event(body, signature, stripe_env.webhook_secret)
    assert event.type == "checkout.session.completed"
    assert stripe_env.deliveries[-1].status == 200


def test_the_same_idempotency_key_returns_the_same_session(stripe_env):
    client = stripe_env.client()
    options = {"idempotency_key": "checkout-attempt-1"}
    first = client.v1.checkout.sessions.create(params=session_params(), options=options)
    again = client.v1.checkout.sessions.create(params=session_params(), options=options)
    other = client.v1.checkout.sessions.create(params=session_params())
    assert again.id == first.id and other.id != first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=session_params(client_reference_id="attempt-2"), options=options
        )


@pytest.mark.parametrize(
    "overrides, param",
    [
        ({"mode": None}, "mode"),
        ({"line_items": None}, "line_items"),
        ({"customer": "cus_missing", "customer_email": None}, "customer"),
        ({"customer": "cus_x"}, "customer_email"),
        ({"expires_at": int(time.time()) + 60}, "expires_at"),
        ({"bogus": "1"}, "bogus"),
        ({"metadata": {"attempt": "x" * 501}}, "metadata[attempt]"),
    ],
)
def test_invalid_requests_get_stripes_error_shape(stripe_env, overrides, param):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_env.client().v1.checkout.sessions.create(params=session_params(**overrides))
    assert refused.value.http_status == 400
    assert refused.value.param == param
    assert refused.value.json_body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("key", ["sk_test_someone_else", "pk_test_doorstep_fake"])
def test_only_the_fakes_secret_key_opens_the_api(stripe_env, key):
    client = stripe.StripeClient(key, base_addresses={"api": stripe_env.api_base})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.customers.create(params={})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.checkout.sessions.create(params=session_params())


def test_an_unknown_session_is_404(stripe_env):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe_env.client().v1.checkout.sessions.retrieve("cs_test_nope")
    assert missing.value.http_status == 404


def test_expire_through_the_api_sends_checkout_session_expired(stripe_env, inbox):
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    stripe_env.wait_idle()
    assert inbox.types() == ["checkout.session.expired"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    assert stripe_env.expire(client.v1.checkout.sessions.create(params=session_params()).id)
    assert inbox.types() == ["checkout.session.expired"] * 2


def test_decline_keeps_the_session_open_and_cancel_goes_back(stripe_env, inbox):
    session = stripe_env.client().v1.checkout.sessions.create(params=session_params())
    assert stripe_env.complete(session.id, "decline") is None
    status, page = get(session.url)
    assert "Your card was declined." in page
    assert stripe_env.session(session.id)["status"] == "open"
    assert stripe_env.complete(session.id, "cancel") == "http://portal.test/back?cancelled=1"
    assert inbox.events == []
    # Paying after a decline works, with a new payment intent.
    declined = stripe_env.session(session.id)["payment_intent"]
    stripe_env.complete(session.id, "card")
    assert inbox.types() == ["checkout.session.completed"]
    assert inbox.events[0].data.object.payment_intent != declined


def test_bank_debit_completes_unpaid_then_settles(stripe_env, inbox):
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "bank")
    completed = inbox.events[-1].data.object
    assert (completed.status, completed.payment_status) == ("complete", "unpaid")
    intent = client.v1.payment_intents.retrieve(completed.payment_intent)
    assert intent.status == "processing"

    stripe_env.settle(session.id)

    assert inbox.types() == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    ]
    assert inbox.events[-1].data.object.payment_status == "paid"
    assert client.v1.payment_intents.retrieve(completed.payment_intent).status == "succeeded"


def test_bank_debit_can_fail(stripe_env, inbox):
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "bank")
    stripe_env.settle(session.id, succeeded=False)
    assert inbox.types()[-1] == "checkout.session.async_payment_failed"
    assert inbox.events[-1].data.object.payment_status == "unpaid"
    intent = client.v1.payment_intents.retrieve(session_intent(stripe_env, session))
    assert intent.status == "requires_payment_method"


def test_setup_mode_saves_a_card_on_the_customer(stripe_env, inbox, monkeypatch):
    client = stripe_env.client()
    customer = client.v1.customers.create(params={"email": "ap@acme.example"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "setup_intent_data": {"metadata": {"company": "7"}},
            "success_url": "http://portal.test/saved?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://portal.test/account",
        }
    )
    assert session.payment_status == "no_payment_required"
    assert ">Save card</button>" in get(session.url)[1]

    assert stripe_env.complete(session.id, "save_card").startswith("http://portal.test/saved?")

    done = inbox.events[-1].data.object
    assert (done.status, done.customer) == ("complete", customer.id)
    setup = client.v1.setup_intents.retrieve(done.setup_intent)
    assert (setup.status, setup.customer, setup.metadata["company"]) == (
        "succeeded",
        customer.id,
        "7",
    )
    methods = client.v1.payment_methods.list(params={"customer": customer.id})
    assert [m.id for m in methods.data] == [setup.payment_method]
    assert methods.data[0].card.last4 == "4242"
    monkeypatch.setattr(stripe, "api_key", stripe_env.secret_key)
    monkeypatch.setattr(stripe, "api_base", stripe_env.api_base)
    listed = stripe.PaymentMethod.list(customer=customer.id)
    assert [m.id for m in listed.data] == [setup.payment_method]


def test_pay_with_card_and_save_it_for_later_then_charge_off_session(stripe_env, inbox):
    client = stripe_env.client()
    customer = client.v1.customers.create(params={"email": "ap@acme.example"})
    params = session_params(customer=customer.id, customer_email=None)
    params["payment_intent_data"]["setup_future_usage"] = "off_session"
    session = client.v1.checkout.sessions.create(params=params)
    stripe_env.complete(session.id, "card")
    (method,) = client.v1.payment_methods.list(params={"customer": customer.id}).data

    charged = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "off_session": True,
            "metadata": {"autopay": "1"},
        }
    )
    assert charged.status == "succeeded"
    stripe_env.wait_idle()
    assert inbox.types()[-1] == "payment_intent.succeeded"
    assert inbox.events[-1].data.object.id == charged.id


def test_an_off_session_decline_is_a_card_error_and_a_payment_failed_event(stripe_env, inbox):
    client = stripe_env.client()
    customer = client.v1.customers.create(params={"email": "ap@acme.example"})
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={
                "amount": 5000,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": "pm_card_chargeCustomerFail",
                "confirm": True,
                "off_session": True,
            }
        )
    assert declined.value.code == "card_declined"
    intent = declined.value.error.payment_intent
    assert intent.status == "requires_payment_method"
    stripe_env.wait_idle()
    assert inbox.types() == ["payment_intent.payment_failed"]
    assert inbox.events[0].data.object.id == intent.id
    # Or sent on demand, for any payment intent.
    stripe_env.payment_intent_event(intent.id, "payment_intent.payment_failed")
    assert inbox.types() == ["payment_intent.payment_failed"] * 2


def test_refund_and_dispute_made_in_the_dashboard(stripe_env, inbox):
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "card")
    intent_id = inbox.events[0].data.object.payment_intent

    stripe_env.refund(intent_id, 3000)
    stripe_env.refund(intent_id, 1000)
    first, second = (e.data.object for e in inbox.events[1:])
    assert inbox.types()[1:] == ["charge.refunded", "charge.refunded"]
    assert (second.payment_intent, second.amount, second.currency) == (intent_id, 13000, "usd")
    assert (first.amount_refunded, second.amount_refunded) == (3000, 4000)
    assert second.refunded is False

    event = stripe_env.dispute(intent_id)
    assert inbox.types()[-1] == "charge.dispute.created"
    dispute = inbox.events[-1].data.object
    assert (dispute.object, dispute.payment_intent, dispute.amount) == ("dispute", intent_id, 13000)
    assert client.v1.disputes.retrieve(dispute.id).status == "needs_response"
    stripe_env.close_dispute(dispute.id, "lost")
    assert inbox.types()[-1] == "charge.dispute.closed"
    assert client.v1.events.retrieve(event["id"]).type == "charge.dispute.created"


def test_a_refund_made_through_the_api_sends_charge_refunded(stripe_env, inbox):
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "card")
    refund = client.v1.refunds.create(
        params={"payment_intent": session_intent(stripe_env, session)}
    )
    assert refund.amount == 13000
    stripe_env.wait_idle()
    assert inbox.types()[-1] == "charge.refunded"
    assert inbox.events[-1].data.object.refunded is True


def session_intent(env, session):
    return env.session(session.id)["payment_intent"]


@pytest.mark.parametrize(
    "signature, refusal",
    [
        ("bad", "No signatures found matching the expected signature"),
        ("expired", "Timestamp outside the tolerance zone"),
        (None, "No Stripe-Signature header value was provided"),
    ],
)
def test_bad_expired_and_missing_signatures_are_refused_by_stripes_verifier(
    stripe_env, inbox, signature, refusal
):
    event = stripe_env.make_event("checkout.session.completed", {"id": "cs_test_x"})
    assert stripe_env.deliver(event, signature=signature).status == 400
    assert inbox.events == [] and refusal in inbox.refused[0]
    assert stripe_env.deliver(event).status == 200


def test_events_held_back_are_delivered_late_out_of_order_and_twice(stripe_env, inbox):
    stripe_env.auto_deliver = False
    client = stripe_env.client()
    session = client.v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "bank")
    stripe_env.settle(session.id)
    assert inbox.events == []
    assert [e["type"] for e in stripe_env.outbox] == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    ]

    stripe_env.deliver_outbox(reverse=True)
    stripe_env.deliver(stripe_env.events_of("checkout.session.completed")[0])

    assert stripe_env.outbox == []
    assert inbox.types() == [
        "checkout.session.async_payment_succeeded",
        "checkout.session.completed",
        "checkout.session.completed",
    ]
    assert inbox.events[1].id == inbox.events[2].id


def test_enabled_events_filters_what_the_endpoint_gets(stripe_env, inbox):
    stripe_env.enabled_events = {"checkout.session.completed"}
    session = stripe_env.client().v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "card")
    stripe_env.refund(stripe_env.session(session.id)["payment_intent"])
    assert inbox.types() == ["checkout.session.completed"]
    assert [e["type"] for e in stripe_env.events] == [
        "checkout.session.completed",
        "charge.refunded",
    ]


def test_the_webhook_arrives_after_the_payers_redirect(stripe_env):
    # The endpoint calls Stripe back while handling the event, as Doorstep does.
    seen = []

    def endpoint(body, headers):
        event = json.loads(body)
        seen.append(
            stripe_env.client().v1.checkout.sessions.retrieve(event["data"]["object"]["id"])
        )
        return 200

    stripe_env.deliver_to = endpoint
    session = stripe_env.client().v1.checkout.sessions.create(params=session_params())
    stripe_env.complete(session.id, "card")
    assert seen[0].status == "complete"


def test_reset_forgets_everything(stripe_env, inbox):
    client = stripe_env.client()
    customer = client.v1.customers.create(params={})
    session = client.v1.checkout.sessions.create(params=session_params())
    stripe_env.reset()
    assert stripe_env.deliver_to is None and stripe_env.events == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.retrieve(session.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer.id)


def test_a_fake_starts_fast_and_stops_cleanly():
    started = time.monotonic()
    with StripeFake() as fake:
        assert time.monotonic() - started < 2
        client = stripe.StripeClient(fake.secret_key, base_addresses={"api": fake.api_base})
        assert client.v1.customers.create(params={}).id.startswith("cus_")
        api_base = fake.api_base
    with pytest.raises(OSError):
        get(f"{api_base}/v1/customers")
