"""Replies by email (migration 0035): the replies the inbound SMTP process took, by key.

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece.
"""

from peewee import CharField, ForeignKeyField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Case, CaseMessage, Contact


class InboundMail(BaseModel):
    """One reply handed to `flask inbound`: its Message-ID (or a digest) is unique, so the
    same reply handed over twice is added to its case once (`services.inbound`)."""

    message_key = CharField(max_length=255, unique=True)
    case = ForeignKeyField(Case, on_delete="CASCADE")
    contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    case_message = ForeignKeyField(CaseMessage, null=True, on_delete="SET NULL")
    status = CharField(max_length=10, default="processing")  # processing, done
    received_at = UtcDateTimeField(default=utcnow)
    done_at = UtcDateTimeField(null=True)


ALL_INBOUND_MODELS = [InboundMail]
