"""Payment providers behind one small interface shaped for hosted checkouts.

start(attempt) -> URL to send the browser to (idempotent per attempt key)
fetch(attempt) -> Event | None: ask the provider what happened (reconciliation)
cancel(attempt): give up a session nobody will finish
parse_return(args) / parse_webhook(headers, body) -> Event: verified, or ProviderError

Stripe lives in `stripe_provider.py` and registers itself: its `start` creates a hosted
Checkout Session with the attempt key as idempotency key, and its webhook is the source of
truth. No card number ever passes through Doorstep (checklist I1).
"""

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from flask import current_app, url_for

from .. import tokens
from ..db import utcnow, write_txn
from ..models import TestCheckoutSession


class ProviderError(Exception):
    """A return or webhook that cannot be trusted (bad signature, stale, malformed)."""


@dataclass(frozen=True)
class Event:
    """What a provider says happened to an attempt, after its signature was checked."""

    provider: str
    attempt_key: str
    status: str  # succeeded, failed, cancelled
    reference: str  # the provider's payment id; unique per provider
    amount_cents: int
    currency: str
    event_id: str = ""


class Provider:
    name = ""
    label = ""
    hosted = True

    def start(self, attempt) -> str:
        raise NotImplementedError

    def fetch(self, attempt) -> Event | None:
        return None

    def cancel(self, attempt) -> None:
        return None

    def parse_return(self, args) -> Event:
        raise ProviderError("this provider has no browser return")

    def parse_webhook(self, headers, body: bytes) -> Event:
        raise ProviderError("this provider sends no webhooks")


class OfflineProvider(Provider):
    """Bank transfer or cheque: recorded as a pending payment until staff confirm it."""

    name = "offline"
    label = "Bank transfer or cheque"
    hosted = False

    def start(self, attempt) -> str:
        return url_for("payments.status", key=attempt.key)


class TestCheckoutProvider(Provider):
    """A hosted-checkout simulator served by Doorstep itself, for demos and tests.

    It keeps its own sessions (one per attempt key, like a provider honouring an
    idempotency key), answers through a signed browser return and signed webhooks, and
    can be asked for a session's outcome for reconciliation.
    """

    name = "test-checkout"
    label = "Card (test mode)"

    def start(self, attempt) -> str:
        with write_txn():
            TestCheckoutSession.insert(
                session_id="tcs_" + secrets.token_hex(12),
                attempt_key=attempt.key,
                amount_cents=attempt.amount_cents,
                currency=attempt.currency,
                merchant=current_app.config.get("MERCHANT_NAME") or "",
            ).on_conflict_ignore().execute()
        session = TestCheckoutSession.get(TestCheckoutSession.attempt_key == attempt.key)
        return url_for("test_checkout.show", session_id=session.session_id)

    def session_for(self, attempt):
        return TestCheckoutSession.get_or_none(TestCheckoutSession.attempt_key == attempt.key)

    def fetch(self, attempt) -> Event | None:
        session = self.session_for(attempt)
        if session is None or session.status == "open":
            return None
        return self._event(session)

    def cancel(self, attempt) -> None:
        with write_txn():
            TestCheckoutSession.update(status="cancelled", completed_at=utcnow()).where(
                (TestCheckoutSession.attempt_key == attempt.key)
                & (TestCheckoutSession.status == "open")
            ).execute()

    def _event(self, session) -> Event:
        return Event(
            provider=self.name,
            attempt_key=session.attempt_key,
            status={"paid": "succeeded", "declined": "failed"}.get(session.status, "cancelled"),
            reference=session.payment_ref or f"{session.session_id}:{session.status}",
            amount_cents=session.amount_cents,
            currency=session.currency,
            event_id=f"evt_{session.session_id}",
        )

    def return_token(self, session) -> str:
        """The signed result the simulator hands back through the browser."""
        event = self._event(session)
        return tokens.make("checkout", event.__dict__)

    def parse_return(self, args) -> Event:
        payload = tokens.read("checkout", args.get("result", ""))
        if not isinstance(payload, dict):
            raise ProviderError("the checkout result is missing, forged or expired")
        try:
            return Event(**payload)
        except TypeError as exc:
            raise ProviderError("the checkout result is malformed") from exc

    # Webhooks: `Doorstep-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`.
    TOLERANCE_SECONDS = 300

    def webhook_secret(self) -> bytes:
        return hashlib.sha256(
            b"test-checkout-webhook:" + current_app.config["SECRET_KEY"].encode()
        ).digest()

    def sign_webhook(self, body: bytes, timestamp: int | None = None) -> str:
        timestamp = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(self.webhook_secret(), f"{timestamp}.".encode() + body, hashlib.sha256)
        return f"t={timestamp},v1={mac.hexdigest()}"

    def parse_webhook(self, headers, body: bytes) -> Event:
        header = headers.get("Doorstep-Signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError as exc:
            raise ProviderError("missing signature timestamp") from exc
        if abs(time.time() - timestamp) > self.TOLERANCE_SECONDS:
            raise ProviderError("stale webhook")
        expected = self.sign_webhook(body, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise ProviderError("bad webhook signature")
        try:
            payload = json.loads(body)
            data = payload["data"]
            return Event(
                provider=self.name,
                attempt_key=str(data["attempt_key"]),
                status={"checkout.succeeded": "succeeded", "checkout.failed": "failed"}.get(
                    payload["type"], "cancelled"
                ),
                reference=str(data["payment_ref"]),
                amount_cents=int(data["amount"]),
                currency=str(data["currency"]),
                event_id=str(payload["id"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError("malformed webhook") from exc


PROVIDERS = {p.name: p for p in (OfflineProvider(), TestCheckoutProvider())}
PROVIDER_LABELS = {name: p.label for name, p in PROVIDERS.items()}


def register(provider: Provider) -> None:
    """Add a provider that lives in its own module (Stripe)."""
    PROVIDERS[provider.name] = provider
    PROVIDER_LABELS[provider.name] = provider.label


def enabled() -> list[Provider]:
    """The providers this installation offers, in configured order."""
    return [PROVIDERS[n] for n in current_app.config["PAYMENT_PROVIDERS"] if n in PROVIDERS]


def get(name: str) -> Provider:
    """An enabled provider by name; KeyError when it is unknown or switched off."""
    if name not in current_app.config["PAYMENT_PROVIDERS"]:
        raise KeyError(name)
    return PROVIDERS[name]
