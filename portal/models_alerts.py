"""Office alerts (migration 0034): each staff login's choice per alert kind, the alerts
waiting for its daily digest, and the one digest a day it was sent.

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece;
`ALL_ALERT_MODELS` lists its tables for schema checks and backups.
"""

from peewee import CharField, DateField, ForeignKeyField, IntegerField, TextField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, StaffUser


class AlertChoice(BaseModel):
    """How one staff login gets one kind of alert (`services.alerts.KINDS`): `now` (an email
    at once), `digest` (in the daily summary) or `none`. No row: the login's default."""

    staff_user = ForeignKeyField(StaffUser, backref="alert_choices", on_delete="CASCADE")
    kind = CharField(max_length=30)
    delivery = CharField(max_length=10)
    changed_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("staff_user", "kind"), True),)


class AlertDigest(BaseModel):
    """The daily summary a staff login was sent on `day` (the business's calendar): the
    unique (login, day) row is what makes a second worker, or a second pass, send none."""

    staff_user = ForeignKeyField(StaffUser, backref="alert_digests", on_delete="CASCADE")
    day = DateField()
    entries = IntegerField(default=0)
    sent_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("staff_user", "day"), True),)


class AlertEntry(BaseModel):
    """One alert waiting for a staff login's digest; `digest` is set when a digest took it."""

    staff_user = ForeignKeyField(StaffUser, backref="alert_entries", on_delete="CASCADE")
    kind = CharField(max_length=30)
    text = TextField()
    link = TextField(default="")
    created_at = UtcDateTimeField(default=utcnow)
    digest = ForeignKeyField(AlertDigest, null=True, backref="items", on_delete="SET NULL")

    class Meta:
        indexes = ((("digest", "created_at"), False),)


ALL_ALERT_MODELS = [AlertChoice, AlertDigest, AlertEntry]
