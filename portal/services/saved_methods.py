"""Saved payment methods: a login saves a card at Stripe for its company, with explicit
consent, sees and removes the company's saved cards in My account, and pays with one in one
step (Stripe asks the bank; when the bank wants the payer to authenticate, the payer is sent
through Stripe's page and comes back).

The card stays at Stripe (checklist I1): Doorstep keeps the Stripe Customer of each portal
customer and, per saved card, only what it shows (brand, last four digits, expiry) and the
consent given. Saving goes through Stripe's hosted Checkout in setup mode.
"""

from dataclasses import dataclass

from flask import current_app

from ..db import utcnow, write_txn
from ..models import Customer, SavedMethod
from ..web import absolute_url
from . import audit, payments, stripe_provider
from .providers import ProviderError

CONSENT = (
    "I allow {company} to save this card with its payment provider and to charge it for "
    "the invoices of {customer} when I, or a colleague with access to our invoices, choose "
    "to pay with it. I can remove it here at any time."
)


class SavedMethodError(Exception):
    """Something a payer should be told next to the form."""


def enabled() -> bool:
    """Saving cards needs the Stripe provider."""
    return "stripe" in current_app.config["PAYMENT_PROVIDERS"]


def consent_text(customer) -> str:
    from . import settings

    return CONSENT.format(company=settings.get("company_name"), customer=customer.name)


def methods_for(customer_id) -> list:
    """The company's saved cards, newest first."""
    return list(
        SavedMethod.select()
        .where((SavedMethod.customer == customer_id) & (SavedMethod.active == True))  # noqa: E712
        .order_by(SavedMethod.saved_at.desc(), SavedMethod.id.desc())
    )


def method_for(customer_id, method_id):
    """One of the company's saved cards by its row id, or None."""
    try:
        method_id = int(method_id)
    except (TypeError, ValueError):
        return None
    return (
        SavedMethod.select()
        .where(
            (SavedMethod.id == method_id)
            & (SavedMethod.customer == customer_id)
            & (SavedMethod.active == True)  # noqa: E712
        )
        .first()
    )


def stripe_customer(customer) -> str:
    """The customer's Customer at Stripe, made once (the idempotency key makes a retry or a
    second process find the same one)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    made = stripe_provider.client().v1.customers.create(
        params={
            "name": customer.name,
            "email": customer.email or None,
            "metadata": {"account_number": customer.account_number, "source": "doorstep"},
        },
        options={"idempotency_key": f"customer-{customer.id}-{customer.account_number}"},
    )
    with write_txn():
        Customer.update(stripe_customer_id=made.id).where(
            (Customer.id == customer.id) & Customer.stripe_customer_id.is_null()
        ).execute()
    return Customer.get_by_id(customer.id).stripe_customer_id


def start_saving(user, consented: bool) -> str:
    """Where to send the browser to save a card (Stripe's page in setup mode)."""
    if not consented:
        raise SavedMethodError("Tick the box to allow us to save the card.")
    customer = user.customer
    session = stripe_provider.client().v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "currency": "usd",
            "customer": stripe_customer(customer),
            "payment_method_types": ["card"],
            "metadata": {"source": stripe_provider.SOURCE, "saved_by": str(user.id)},
            "setup_intent_data": {"metadata": {"saved_by": str(user.id)}},
            "success_url": absolute_url("account.card_saved") + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": absolute_url("account.index") + "#payment-methods",
        }
    )
    return session.url


def finish_saving(user, session_id: str) -> SavedMethod | None:
    """Back from Stripe's page: record the card the session saved (once), with the consent."""
    client = stripe_provider.client()
    session = stripe_provider._plain(client.v1.checkout.sessions.retrieve(session_id))
    customer = user.customer
    if (
        session.get("mode") != "setup"
        or session.get("status") != "complete"
        or session.get("customer") != customer.stripe_customer_id
        or (session.get("metadata") or {}).get("saved_by") != str(user.id)
    ):
        return None
    intent = stripe_provider._plain(client.v1.setup_intents.retrieve(session["setup_intent"]))
    method = stripe_provider._plain(client.v1.payment_methods.retrieve(intent["payment_method"]))
    card = method.get("card") or {}
    with write_txn():
        SavedMethod.insert(
            customer=customer.id,
            method_id=method["id"],
            brand=str(card.get("brand") or "card")[:30],
            last4=str(card.get("last4") or "")[:4],
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            saved_by=user.id,
            consent=consent_text(customer),
        ).on_conflict_ignore().execute()
        saved = SavedMethod.get(SavedMethod.method_id == method["id"])
        audit.record("payment_method.saved", saved, actor=user, label=saved.label)
    return saved


def remove(user, method) -> None:
    """Forget a saved card here and at Stripe; audited. Autopay that used it stops."""
    try:
        stripe_provider.client().v1.payment_methods.detach(method.method_id)
    except Exception:  # already gone at Stripe: it must still go from here
        current_app.logger.warning("could not detach %s at Stripe", method.method_id)
    with write_txn():
        SavedMethod.update(active=False, removed_at=utcnow()).where(
            SavedMethod.id == method.id
        ).execute()
        audit.record("payment_method.removed", method, actor=user, label=method.label)
    from . import autopay  # it builds on this module

    autopay.card_removed(method)


@dataclass
class SavedStart:
    """Starts an attempt with a saved card instead of Stripe's Checkout page."""

    method: SavedMethod
    off_session: bool = False

    def __call__(self, attempt) -> str:
        """Charge the card now; where the browser goes next (the status page, or the bank's
        authentication through Stripe)."""
        from .. import stripe_units

        customer = Customer.get_by_id(attempt.customer_id)
        metadata = {"attempt": attempt.key, "source": stripe_provider.SOURCE}
        return_url = absolute_url("payments.provider_return", provider="stripe", key=attempt.key)
        params = {
            "amount": stripe_units.to_stripe(attempt.amount_cents, attempt.currency),
            "currency": attempt.currency.lower(),
            "customer": stripe_customer(customer),
            "payment_method": self.method.method_id,
            "confirm": True,
            "metadata": metadata,
        }
        if self.off_session:
            params["off_session"] = True
        else:
            params["return_url"] = return_url
        import stripe

        try:
            intent = stripe_provider.client().v1.payment_intents.create(
                params=params, options={"idempotency_key": f"intent-{attempt.key}"}
            )
        except stripe.CardError as exc:  # checkout marks the attempt failed
            if exc.code == "authentication_required":  # off-session: nobody to ask
                raise ProviderError(
                    "The bank wants the cardholder to confirm this payment, which cannot be "
                    "done automatically: pay the invoice in the portal, where the bank can ask."
                ) from exc
            raise ProviderError(
                "The card was declined: " + (exc.user_message or "try another card or way to pay")
            ) from exc
        intent = stripe_provider._plain(intent)
        from ..models import PaymentAttempt

        with write_txn():
            PaymentAttempt.update(provider_session=intent["id"]).where(
                (PaymentAttempt.id == attempt.id) & PaymentAttempt.provider_session.is_null()
            ).execute()
        event = stripe_provider.intent_event(intent, "")
        if event is not None:
            payments.apply_event(event)
        action = (intent.get("next_action") or {}).get("redirect_to_url") or {}
        if intent.get("status") == "requires_action" and action.get("url"):
            return action["url"]
        return absolute_url("payments.status", key=attempt.key)
