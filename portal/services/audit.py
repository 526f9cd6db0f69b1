"""The audit log: who did what, when and from where, written inside the caller's transaction
(and logged as a line once that transaction has committed)."""

import json
import logging
from functools import partial

from flask import has_request_context, request
from flask_login import current_user

from ..db import after_commit
from ..models import AuditLog
from ..request_ids import request_id

log = logging.getLogger("portal.audit")


def client_ip() -> str:
    """The client address as the trusted proxy chain reports it (ProxyFix), or ''."""
    return (request.remote_addr or "") if has_request_context() else ""


def _actor():
    if not has_request_context() or not current_user or not current_user.is_authenticated:
        return ("guest" if has_request_context() else "system"), None, ""
    kind = "staff" if current_user.is_staff else "portal"
    return kind, current_user.id, current_user.email


def record(action: str, obj=None, actor=None, **detail) -> AuditLog:
    """Write one audit entry for `action` on `obj` (a model instance or None)."""
    kind, actor_id, label = _actor()
    if actor is not None:
        kind = getattr(actor, "actor_kind", None) or ("staff" if actor.is_staff else "portal")
        actor_id, label = actor.id, actor.email
    entry = AuditLog.create(
        actor_kind=kind,
        actor_id=actor_id,
        actor_label=label,
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj._pk) if obj is not None else "",
        detail=json.dumps(detail, default=str, sort_keys=True) if detail else "",
        ip=client_ip(),
    )
    # The same event as a log line for the log pipeline (K2); never the detail, which may
    # name people, and never secrets (K3). Only once the entry is committed: a rolled-back
    # action leaves neither the row nor a line claiming it happened.
    after_commit(
        partial(
            log.info,
            "audit %s actor=%s:%s ip=%s object=%s:%s request=%s",
            action,
            kind,
            actor_id if actor_id is not None else "-",
            entry.ip or "-",
            entry.object_type or "-",
            entry.object_id or "-",
            request_id(),
        )
    )
    return entry
