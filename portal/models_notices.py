"""A contact's choices of customer mail (migration 0031): its portal login edits them.

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece;
`ALL_NOTICE_MODELS` lists its tables for schema checks and backups.
"""

from peewee import BooleanField, CharField, ForeignKeyField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Contact


class NoticeChoice(BaseModel):
    """One contact's choice for one topic (`services.notices.TOPICS`); no row: on."""

    contact = ForeignKeyField(Contact, backref="notice_choices", on_delete="CASCADE")
    topic = CharField(max_length=30)
    enabled = BooleanField()
    changed_by = CharField(max_length=20, default="login")  # "login", "unsubscribe", "staff"
    changed_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("contact", "topic"), True),)


ALL_NOTICE_MODELS = [NoticeChoice]
