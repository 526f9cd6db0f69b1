"""The front door: a landing page for guests, the customer home once signed in."""

from flask import Blueprint, redirect, url_for
from flask_login import current_user
from peewee import fn

from ..models import Case, Invoice, Quote
from ..web import render

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """Guests see how to pay or sign in; customers see their home."""
    if not current_user.is_authenticated:
        return render("home/landing.html")
    if current_user.is_staff:
        return redirect(url_for("staff.index"))
    user = current_user
    summary = {}
    if user.has_role("invoices") or user.has_role("statements"):
        unpaid = Invoice.unpaid(
            Invoice.for_user(
                user, fn.COUNT(Invoice.id).alias("n"), fn.SUM(Invoice.balance_expr()).alias("due")
            )
        )
        row = unpaid.dicts().get()
        summary["open_invoices"] = row["n"]
        summary["balance"] = int(row["due"] or 0)
    if user.has_role("quotes"):
        summary["open_quotes"] = Quote.for_user(user).where(Quote.status == "published").count()
    if user.has_role("cases"):
        summary["open_cases"] = (
            Case.for_user(user).where(Case.status.not_in(("resolved", "closed"))).count()
        )
    return render("home/index.html", summary=summary, customer=user.customer)
