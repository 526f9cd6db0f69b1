"""The email outbox: what was sent, what failed, and retrying failed messages."""

import re

from flask import Blueprint, flash, request, url_for

from ...forms import ActionForm
from ...models import OutboxMessage
from ...services import backoffice, outbox
from ...web import page_number, redirect_to, render
from ._common import get_or_404, guard, me

bp = Blueprint("staff_outbox", __name__, url_prefix="/staff/outbox")
guard(bp)
# The receipt page (any visitor) says whether its emailed copy really went out.
bp.add_app_template_global(outbox.receipt_state, "receipt_mail_state")

# Tabs: `queued` also lists what a worker is sending right now.
STATUSES = ("queued", "sent", "uncertain", "failed")
TAB_STATUSES = {"queued": outbox.WAITING}
# A long token in a link (invitation, reset, pay link): staff must not be able to use it.
TOKEN = re.compile(r"(https?://\S*?/)[A-Za-z0-9_.\-]{24,}")


def redact(text: str) -> str:
    """The body with the secret part of every signed link hidden."""
    return TOKEN.sub(r"\1[link hidden]", text)


@bp.get("/")
def index():
    """Emails, newest first, by status (tabs are plain links)."""
    status = request.args.get("status", "")
    query = OutboxMessage.select().order_by(
        OutboxMessage.created_at.desc(), OutboxMessage.id.desc()
    )
    if status in STATUSES:
        query = query.where(OutboxMessage.status.in_(TAB_STATUSES.get(status, (status,))))
    else:
        status = ""
    counts = outbox.counts()
    counts["queued"] = counts["waiting"]
    return render(
        "staff/outbox/index.html",
        page=backoffice.paginate(query, page_number()),
        current_status=status,  # not `status`: that is render()'s HTTP status
        counts=counts,
        statuses=STATUSES,
    )


@bp.get("/<int:message_id>")
def show(message_id):
    """One email as it was (or will be) sent."""
    return render(
        "staff/outbox/show.html",
        message=get_or_404(OutboxMessage, message_id),
        body=redact(get_or_404(OutboxMessage, message_id).body_text),
        action_form=ActionForm(),
    )


@bp.post("/<int:message_id>/retry")
def retry(message_id):
    """Put a failed or uncertain email back in the queue (same Message-ID); it is sent once
    this request commits."""
    message = get_or_404(OutboxMessage, message_id)
    ActionForm().validate()
    if outbox.send_again(message.id, me()):
        flash(f"The email to {message.to_addr} is queued again.", "success")
    else:
        flash("Only failed or uncertain emails can be sent again.", "error")
    return redirect_to(url_for("staff_outbox.show", message_id=message.id))
