"""The audit log (staff admins): who did what, when and from where, with filters."""

import json

from flask import Blueprint, request
from werkzeug.datastructures import MultiDict

from ...forms.staff import AuditFilterForm
from ...services import backoffice
from ...web import page_number, render
from ._common import guard

bp = Blueprint("staff_audit", __name__, url_prefix="/staff/audit")
guard(bp, admin=True)


def pretty(detail: str) -> str:
    """An entry's JSON detail as `key: value` lines, for reading."""
    if not detail:
        return ""
    try:
        values = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(values, dict):
        return detail
    return "\n".join(
        f"{key}: {json.dumps(value, ensure_ascii=False, sort_keys=True)}"
        for key, value in sorted(values.items())
    )


@bp.get("/")
def index():
    """Audit entries, newest first, filtered by action, person, object and dates."""
    form = AuditFilterForm(MultiDict(request.args))
    form.validate()
    query = backoffice.search_audit(
        action=form.action.data or "",
        actor=form.actor.data or "",
        object_type=form.object_type.data or "",
        object_id=form.object_id.data or "",
        start=None if form.start.errors else form.start.data,
        end=None if form.end.errors else form.end.data,
    )
    return render(
        "staff/audit/index.html",
        block="results",
        form=form,
        page=backoffice.paginate(query, page_number(), size=50),
        actions=backoffice.audit_actions(),
        pretty=pretty,
    )
