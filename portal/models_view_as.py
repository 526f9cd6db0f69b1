"""Staff viewing the portal as a customer (migration 0037): one row per read-only view.

Kept beside `models.py` so the slice stays one piece. A row is the server-side half of a
view: the staff session holds only its id, and the row binds it to that staff login and
sign-in (a digest of the session key), so stopping it, its expiry, or the staff user
signing out ends it for good; a copied cookie cannot bring it back.
"""

from peewee import CharField, ForeignKeyField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Customer, PortalUser, StaffUser


class ViewAsGrant(BaseModel):
    """A staff user seeing the portal as one login of a customer (or the whole account,
    `portal_user` empty), read-only, until `expires_at` or until stopped (`ended_at`)."""

    staff_user = ForeignKeyField(StaffUser, on_delete="CASCADE")
    customer = ForeignKeyField(Customer, on_delete="CASCADE")
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="CASCADE")
    session_hash = CharField(max_length=64, index=True)  # digest of the staff session key
    started_at = UtcDateTimeField(default=utcnow)
    expires_at = UtcDateTimeField()
    ended_at = UtcDateTimeField(null=True)
    end_reason = CharField(max_length=20, default="")  # stopped, expired, replaced

    class Meta:
        table_name = "view_as_grant"


ALL_VIEW_AS_MODELS = [ViewAsGrant]
