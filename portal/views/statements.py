"""Statements: the A/R statement for a date range (page, print, CSV), aging, payment history."""

from flask import Blueprint, Response, abort, request, url_for
from flask_login import current_user

from ..auth import customer_required
from ..services import billing, providers, statements
from ..web import page_number, render

bp = Blueprint("statements", __name__, url_prefix="/statements")
statements_required = customer_required("statements", "statements")


@bp.context_processor
def _print_url():
    """The page's own URL with ?print=1: a "Print" link that works after a boosted visit."""
    if request.endpoint is None:
        return {}
    args = {**(request.view_args or {}), **request.args.to_dict(), "print": "1"}
    return {"print_url": url_for(request.endpoint, **args)}


@bp.get("/")
@statements_required
def index():
    """The statement for a date range (a GET form, so the URL is shareable and printable)."""
    start, end, errors = statements.parse_range(request.args)
    result = None if errors else statements.statement(current_user, start, end)
    # A page of lines at a time, with the balance brought and carried forward; the CSV has
    # every line of the range.
    lines = statements.statement_page(result, page_number()) if result else None
    return render(
        "statements/index.html",
        block="statement",
        status=422 if errors else 200,
        start=start,
        end=end,
        errors=errors,
        result=result,
        lines=lines,
        customer=current_user.customer,
        raw={k: request.args.get(k, "") for k in ("start", "end")},
    )


@bp.get("/statement.csv")
@statements_required
def export():
    """The same statement as CSV."""
    start, end, errors = statements.parse_range(request.args)
    if errors:
        abort(400, next(iter(errors.values())))
    result = statements.statement(current_user, start, end)
    name = f"statement-{start.isoformat()}-to-{end.isoformat()}.csv"
    return Response(
        statements.statement_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/aging")
@statements_required
def aging():
    """Open invoices by days past due: every group's total and first invoices, or one
    group's invoices a page at a time (`?bucket=d1_30&page=2`)."""
    report = statements.aging(current_user, bucket=request.args.get("bucket"), page=page_number())
    return render(
        "statements/aging.html",
        report=report,
        buckets=billing.BUCKETS,
        chart=billing.aging_chart(report["summary"]["buckets"]),
    )


@bp.get("/payments")
@statements_required
def payments():
    """Every payment, newest first, each with its receipt."""
    page = statements.payment_page(current_user, page_number())
    return render("statements/payments.html", block="history", page=page)


@bp.get("/payments/<opaque('payment'):payment_id>")
@statements_required
def receipt(payment_id):
    """The receipt of one payment (also for payments made outside the portal)."""
    payment = statements.payment_for(current_user, payment_id)
    if payment is None:
        abort(404)
    whole_account = current_user.site_ids is None
    return render(
        "statements/receipt.html",
        payment=payment,
        applications=statements.applications_for(current_user, payment),
        # Credit is the company's: a site-limited login sees only its own sites' part.
        credit_shown=whole_account and payment.status == "applied" and payment.unapplied_cents,
        refunds=list(payment.refunds) if whole_account else [],
        provider_label=providers.PROVIDER_LABELS.get(payment.provider, payment.provider),
    )
