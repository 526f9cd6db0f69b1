"""Where a payment attempt lands: status and receipt pages, provider returns and webhooks."""

import logging

from flask import Blueprint, abort, flash, jsonify, redirect, request, url_for
from flask_login import current_user

from .. import csrf
from ..forms import ActionForm
from ..models import Payment
from ..services import payments, providers
from ..web import redirect_to, render

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__, url_prefix="/payments")


def _attempt_or_404(key: str):
    attempt = payments.attempt_for_viewer(key, current_user)
    if attempt is None:
        abort(404)
    return attempt


@bp.get("/<key>")
def status(key):
    """The attempt's status read from our database (never from the redirect's word, I7)."""
    attempt = _attempt_or_404(key)
    payment = Payment.get_or_none(Payment.attempt == attempt.id)
    return render(
        "payments/status.html",
        block="status",
        attempt=attempt,
        payment=payment,
        **payments.lines_for_viewer(attempt, payment, current_user),
        provider_label=providers.PROVIDER_LABELS.get(attempt.provider, attempt.provider),
        can_cancel=payments.may_cancel(payment, current_user),
        can_retry=payments.retry_of(key, current_user, guest=attempt.guest) is not None,
        action_form=ActionForm(),
    )


@bp.post("/<opaque('payment'):payment_id>/cancel")
def cancel(payment_id):
    """The payer cancels their own offline payment before it arrived; anyone else gets 404."""
    payment = Payment.get_or_none(Payment.id == payment_id)
    if not payments.may_cancel(payment, current_user):
        abort(404)
    if not ActionForm().validate():
        abort(400)
    try:
        payments.cancel_offline(payment, current_user if current_user.is_authenticated else None)
    except payments.PaymentError as exc:
        flash(exc.message, "error")
    else:
        flash(
            f"Payment {payment.receipt_number} is cancelled: the invoice is open to pay again.",
            "success",
        )
    return redirect_to(url_for("payments.status", key=payment.attempt.key))


@bp.get("/return/<provider>/<key>")
def provider_return(provider, key):
    """The browser comes back from a hosted checkout with a signed result."""
    try:
        chosen = providers.get(provider)
        event = chosen.parse_return({**request.args.to_dict(), "attempt": key})
    except (KeyError, providers.ProviderError) as exc:
        log.warning("security alert: rejected checkout return for %s: %s", key, exc)
        abort(400, "This payment result could not be verified. Your invoice has not changed.")
    except Exception:  # the provider did not answer: its webhook (or the worker) will tell
        log.exception("could not ask %s about attempt %s on return", provider, key)
        return redirect(url_for("payments.status", key=key), code=303)
    if event.attempt_key != key:
        abort(400, "This payment result could not be verified. Your invoice has not changed.")
    if event.status != "open":
        payments.apply_event(event)
    return redirect(url_for("payments.status", key=key), code=303)


@bp.post("/webhook/<provider>")
@csrf.exempt
def webhook(provider):
    """Provider-to-server notification, verified on the raw body (I8); idempotent."""
    try:
        event = providers.get(provider).parse_webhook(request.headers, request.get_data())
    except (KeyError, providers.ProviderError) as exc:
        log.warning("security alert: rejected %s webhook: %s", provider, exc)
        return jsonify(error="invalid webhook"), 400
    status, body = payments.handle_webhook(provider, event)
    return jsonify(body), status


@bp.post("/stripe/webhook")
@csrf.exempt
def stripe_webhook():
    """Stripe's webhook address (the one to enter in Stripe's dashboard)."""
    return webhook("stripe")
