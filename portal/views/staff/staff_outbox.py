"""The email outbox: what was sent, what failed, and retrying failed messages."""

import re

from flask import Blueprint, flash, request, url_for
from peewee import fn

from ...forms import ActionForm
from ...models import OutboxMessage
from ...services import backoffice
from ...web import page_number, redirect_to, render
from ._common import get_or_404, guard, me

bp = Blueprint("staff_outbox", __name__, url_prefix="/staff/outbox")
guard(bp)

STATUSES = ("queued", "sent", "failed")
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
        query = query.where(OutboxMessage.status == status)
    else:
        status = ""
    counts = dict(
        OutboxMessage.select(OutboxMessage.status, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.status)
        .tuples()
    )
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
    """Put a failed email back in the queue; it is sent once this request commits."""
    message = get_or_404(OutboxMessage, message_id)
    ActionForm().validate()
    if backoffice.retry_message(message.id, me()):
        flash(f"The email to {message.to_addr} is queued again.", "success")
    else:
        flash("Only failed emails can be retried.", "error")
    return redirect_to(url_for("staff_outbox.show", message_id=message.id))
