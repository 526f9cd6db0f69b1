"""Stripe: one-off payments through Stripe's hosted Checkout, verified webhooks, reversals.

No card or bank number ever reaches Doorstep (checklist I1) and the Content-Security-Policy
stays strict: the browser is sent to Stripe's own page. The attempt key is the idempotency
key of the Checkout Session and travels in its metadata, so a retried start never makes a
second session and every webhook names its attempt. Stripe's webhook is the source of
truth (checked with Stripe's own signature verifier); the browser's return is only a hint
to ask Stripe, server to server, what happened.

Bank debits (US ACH, SEPA) complete their Checkout Session unpaid: the payment is pending
(shown on its invoices like a bank transfer) until `checkout.session.async_payment_*`.
A refund or a dispute made in Stripe's dashboard arrives as `charge.refunded` /
`charge.dispute.created` and takes the money back off the invoices it paid.

Configuration (environment only): PORTAL_STRIPE_SECRET_KEY, PORTAL_STRIPE_WEBHOOK_SECRET,
PORTAL_STRIPE_API_BASE (tests only). Amounts go to Stripe in the currency's own smallest
unit (`portal/stripe_units.py`: JPY has none, BHD has thousandths).
"""

import logging
from dataclasses import dataclass

from flask import current_app

from ..web import absolute_url
from .providers import Event, Provider, ProviderError, register

log = logging.getLogger(__name__)

# Marks the sessions this portal made, so a webhook for another integration on the same
# Stripe account is ignored while one for an attempt we lost (a restored backup) is retried.
SOURCE = "doorstep"
TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Reversal:
    """Money taken back at the provider after a payment was applied: a refund or a dispute."""

    provider: str
    reference: str  # the payment's provider reference (the PaymentIntent id)
    amount_cents: int  # how much, in total, has been taken back so far
    currency: str
    kind: str  # refund, dispute
    event_id: str


def client():
    """A Stripe client for this portal's keys (and the test suite's API base)."""
    import stripe

    config = current_app.config
    options = {"max_network_retries": 2}
    if config.get("STRIPE_API_BASE"):
        options["base_addresses"] = {"api": config["STRIPE_API_BASE"]}
    return stripe.StripeClient(
        config["STRIPE_SECRET_KEY"],
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
        **options,
    )


def mode() -> str:
    """`live` or `test`, from the secret key's prefix (the key itself is never shown)."""
    return (
        "live"
        if current_app.config.get("STRIPE_SECRET_KEY", "").startswith(("sk_live", "rk_live"))
        else "test"
    )


def status() -> dict | None:
    """For the back office: whether Stripe is on, in which mode, and when the last webhook
    was handled (None while the provider is not enabled)."""
    from ..models import ProviderEvent

    if "stripe" not in current_app.config["PAYMENT_PROVIDERS"]:
        return None
    last = (
        ProviderEvent.select(ProviderEvent.received_at)
        .where(ProviderEvent.provider == "stripe")
        .order_by(ProviderEvent.received_at.desc())
        .first()
    )
    return {"mode": mode(), "last_webhook": last.received_at if last else None}


def _currency(code: str) -> str:
    return code.lower()


class StripeProvider(Provider):
    """Stripe Checkout (card, and the bank debits the Stripe account enables)."""

    name = "stripe"
    label = "Card or bank account (Stripe)"

    def start(self, attempt) -> str:
        from .. import stripe_units
        from ..models import PaymentAttempt

        try:
            amount = stripe_units.to_stripe(attempt.amount_cents, attempt.currency)
        except ValueError as exc:
            raise ProviderError(str(exc)) from exc
        return_url = absolute_url("payments.provider_return", provider=self.name, key=attempt.key)
        metadata = {"attempt": attempt.key, "source": SOURCE}
        params = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": _currency(attempt.currency),
                        "unit_amount": amount,
                        "product_data": {"name": _description(attempt)},
                    },
                }
            ],
            "client_reference_id": attempt.key,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": return_url + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": return_url + "?cancelled=1",
        }
        if attempt.payer_email:
            params["customer_email"] = attempt.payer_email
        session = client().v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"checkout-{attempt.key}"}
        )
        PaymentAttempt.update(provider_session=session.id).where(
            (PaymentAttempt.id == attempt.id) & PaymentAttempt.provider_session.is_null()
        ).execute()
        return session.url

    def _session(self, session_id: str):
        return client().v1.checkout.sessions.retrieve(session_id)

    def fetch(self, attempt) -> Event | None:
        if not attempt.provider_session:
            return None
        if attempt.provider_session.startswith("pi_"):  # a saved card, charged directly
            intent = client().v1.payment_intents.retrieve(attempt.provider_session)
            return intent_event(_plain(intent), "")
        return self._event(self._session(attempt.provider_session), "")

    def cancel(self, attempt) -> None:
        if not attempt.provider_session or attempt.provider_session.startswith("pi_"):
            return
        session = self._session(attempt.provider_session)
        if _plain(session).get("status") == "open":
            client().v1.checkout.sessions.expire(attempt.provider_session)

    def _event(self, session, event_id: str) -> Event | None:
        """What a Checkout Session says about its attempt (None while it is open)."""
        session = _plain(session)
        metadata = dict(session.get("metadata") or {})
        key = metadata.get("attempt") or session.get("client_reference_id") or ""
        if not key:
            raise ProviderError("a checkout session without an attempt")
        status = session.get("status")
        paid = session.get("payment_status")
        if status == "open":
            return None
        if status == "expired":
            outcome = "cancelled"
        elif paid == "paid":
            outcome = "succeeded"
        elif paid == "unpaid":
            outcome = "processing"  # a bank debit on its way
        else:
            outcome = "failed"
        from .. import stripe_units

        currency = str(session.get("currency") or "").upper()
        intent = session.get("payment_intent")
        reference = intent if isinstance(intent, str) else (intent or {}).get("id") or session["id"]
        return Event(
            provider=self.name,
            attempt_key=key,
            status=outcome,
            reference=reference,
            amount_cents=stripe_units.from_stripe(int(session.get("amount_total") or 0), currency),
            currency=currency,
            event_id=event_id,
        )

    def parse_return(self, args) -> Event:
        """The browser came back: ask Stripe about the session (the URL proves nothing).
        Back through the cancel link (Stripe names no session there), the attempt's own
        session is asked, and expired if it is still open: the payer gave up on it."""
        from ..models import PaymentAttempt

        intent_id = args.get("payment_intent", "")
        if intent_id.startswith("pi_"):  # back from the bank's authentication (a saved card)
            intent = _plain(client().v1.payment_intents.retrieve(intent_id))
            key = (intent.get("metadata") or {}).get("attempt", "")
            event = intent_event(intent, "")
            return event or Event(self.name, key, "open", intent_id, 0, "")
        session_id = args.get("session_id", "")
        if not session_id.startswith("cs_"):
            attempt = PaymentAttempt.get_or_none(PaymentAttempt.key == args.get("attempt", ""))
            session_id = (
                attempt.provider_session if attempt and attempt.provider == self.name else ""
            )
        if not session_id:
            raise ProviderError("no checkout session in the return")
        session = _plain(self._session(session_id))
        key = (session.get("metadata") or {}).get("attempt", "")
        if session.get("status") == "open" and args.get("cancelled"):
            client().v1.checkout.sessions.expire(session_id)
            return Event(self.name, key, "cancelled", session_id, 0, "")
        event = self._event(session, "")
        if event is None:  # back without paying: nothing happened yet
            return Event(self.name, key, "open", session_id, 0, "")
        return event

    def parse_webhook(self, headers, body: bytes):
        """A verified Stripe event: an attempt's outcome, a reversal, or None (not ours, or a
        type Doorstep does not act on). Bad or stale signatures raise ProviderError."""
        import stripe

        try:
            event = stripe.Webhook.construct_event(
                body,
                headers.get("Stripe-Signature", ""),
                current_app.config["STRIPE_WEBHOOK_SECRET"],
            )
        except (ValueError, stripe.SignatureVerificationError) as exc:
            raise ProviderError(f"webhook not verified: {exc}") from exc
        kind, obj = event["type"], _plain(event["data"]["object"])
        if kind.startswith("checkout.session."):
            if dict(obj.get("metadata") or {}).get("source") != SOURCE:
                return None
            if kind == "checkout.session.async_payment_failed":
                found = self._event(obj, event["id"])
                return Event(**{**found.__dict__, "status": "failed"})
            return self._event(obj, event["id"])
        if kind in (
            "payment_intent.succeeded",
            "payment_intent.processing",
            "payment_intent.payment_failed",
        ):
            if dict(obj.get("metadata") or {}).get("source") != SOURCE:
                return None
            return intent_event(obj, event["id"])
        if kind in ("charge.refunded", "charge.dispute.created", "charge.dispute.funds_withdrawn"):
            from .. import stripe_units

            refund = kind == "charge.refunded"
            amount = obj.get("amount_refunded") if refund else obj.get("amount")
            intent = obj.get("payment_intent")
            if not intent:
                return None
            currency = str(obj.get("currency") or "").upper()
            return Reversal(
                provider=self.name,
                reference=intent if isinstance(intent, str) else intent.get("id"),
                amount_cents=stripe_units.from_stripe(int(amount or 0), currency),
                currency=currency,
                kind="refund" if refund else "dispute",
                event_id=event["id"],
            )
        return None


def intent_event(intent: dict, event_id: str) -> Event | None:
    """What a PaymentIntent of ours says about its attempt (None while the payer still has
    something to do, e.g. authenticate with the bank)."""
    from .. import stripe_units

    key = (intent.get("metadata") or {}).get("attempt", "")
    if not key:
        return None
    outcome = {
        "succeeded": "succeeded",
        "processing": "processing",
        "requires_payment_method": "failed",
        "canceled": "cancelled",
    }.get(intent.get("status"))
    if outcome is None:
        return None
    currency = str(intent.get("currency") or "").upper()
    return Event(
        provider="stripe",
        attempt_key=key,
        status=outcome,
        reference=intent["id"],
        amount_cents=stripe_units.from_stripe(int(intent.get("amount") or 0), currency),
        currency=currency,
        event_id=event_id,
    )


def _plain(obj) -> dict:
    """A Stripe object as a plain dict (stripe-python's objects are not dicts)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _description(attempt) -> str:
    """What the payer sees on Stripe's page and statement: the invoices paid."""
    numbers = [item.invoice.number for item in attempt.items]
    shown = ", ".join(numbers[:5]) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
    return f"Invoice {shown}" if len(numbers) == 1 else f"Invoices {shown}"


register(StripeProvider())
