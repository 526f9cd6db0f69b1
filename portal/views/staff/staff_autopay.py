"""Autopay in the back office: which companies pay by autopay, with what, and how it went."""

from flask import Blueprint

from ...services import autopay
from ...web import render
from ._common import guard

bp = Blueprint("staff_autopay", __name__, url_prefix="/staff/autopay")
guard(bp)


@bp.get("/")
def index():
    """Every enrolment (on first), its card, limit and timing, who authorised it and the
    latest charges' outcomes."""
    enrolments = autopay.enrolments()
    return render(
        "staff/autopay/index.html",
        enrolments=enrolments,
        consents={e.customer_id: autopay.last_consent(e.customer_id) for e in enrolments},
        charges={e.customer_id: autopay.charges_for(e.customer_id, limit=3) for e in enrolments},
        enabled=autopay.enabled(),
    )
