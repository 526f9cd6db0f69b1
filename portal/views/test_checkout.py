"""The test-checkout simulator: a stand-in hosted checkout page, loudly in test mode.

It behaves like an outside provider would: its own page and session record, outcomes
success / decline / cancel, and a signed result handed back through the browser.
It exists only when `test-checkout` is in PORTAL_PAYMENT_PROVIDERS.
"""

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from ..db import utcnow, write_txn
from ..models import TestCheckoutSession
from ..security import new_stamp
from ..services import providers, settings

bp = Blueprint("test_checkout", __name__, url_prefix="/test-checkout")


@bp.before_request
def _enabled():
    if "test-checkout" not in current_app.config["PAYMENT_PROVIDERS"]:
        abort(404)


def _session_or_404(session_id):
    session = TestCheckoutSession.get_or_none(TestCheckoutSession.session_id == session_id)
    if session is None:
        abort(404)
    return session


@bp.get("/<session_id>")
def show(session_id):
    """The simulated hosted payment page."""
    session = _session_or_404(session_id)
    if session.status != "open":
        return _back(session)
    return render_template(
        "test_checkout/show.html", session=session, merchant=settings.get("company_name")
    )


@bp.post("/<session_id>")
def complete(session_id):
    """Pay, decline or cancel; a finished session always answers with the same result."""
    session = _session_or_404(session_id)
    outcome = {"pay": "paid", "decline": "declined", "cancel": "cancelled"}.get(
        request.form.get("outcome", "")
    )
    if outcome is None:
        abort(400)
    with write_txn():
        TestCheckoutSession.update(
            status=outcome,
            completed_at=utcnow(),
            payment_ref=("tcp_" + new_stamp()) if outcome == "paid" else None,
        ).where(
            (TestCheckoutSession.id == session.id) & (TestCheckoutSession.status == "open")
        ).execute()
    return _back(TestCheckoutSession.get_by_id(session.id))


def _back(session):
    provider = providers.PROVIDERS["test-checkout"]
    return redirect(
        url_for(
            "payments.provider_return",
            provider="test-checkout",
            key=session.attempt_key,
            result=provider.return_token(session),
        ),
        code=303,
    )
