"""The quick-pay capability rows (migration 0018): a guest's 15-minute permission to pay one
invoice, kept on the server so that "Done" ends it at once (checklist A8).

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece.
"""

from peewee import CharField, ForeignKeyField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Invoice


class QuickPayGrant(BaseModel):
    """One granted capability: the session cookie holds a random name whose SHA-256 is
    `grant_hash`; it works until `expires_at` unless `ended_at` is set."""

    grant_hash = CharField(max_length=64, unique=True)
    invoice = ForeignKeyField(Invoice, on_delete="CASCADE")
    created_at = UtcDateTimeField(default=utcnow)
    expires_at = UtcDateTimeField(index=True)
    ended_at = UtcDateTimeField(null=True)

    class Meta:
        table_name = "quick_pay_grant"
