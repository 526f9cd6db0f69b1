"""The front door: a landing page for guests, the customer home once signed in."""

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from ..services import billing, settings
from ..web import render

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """Guests see how to pay or sign in; customers see their financial home."""
    if not current_user.is_authenticated:
        return render("home/landing.html")
    if current_user.is_staff:
        return redirect(url_for("staff.index"))
    user = current_user
    values = settings.load()
    context = {"customer": user.customer, "summary": None, "counts": billing.open_counts(user)}
    sees_invoices = user.has_role("invoices") and values["module_invoices"]
    sees_statements = user.has_role("statements") and values["module_statements"]
    if sees_invoices or sees_statements:
        summary = billing.summary(user)
        context.update(
            summary=summary,
            chart=billing.aging_chart(summary["buckets"]),
            recent_invoices=billing.recent_invoices(user) if sees_invoices else [],
            recent_payments=billing.recent_payments(user),
            today=billing.today(),
            sees_invoices=sees_invoices,
            sees_statements=sees_statements,
        )
    return render("home/index.html", **context)
