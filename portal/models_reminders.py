"""Payment reminders (migration 0040): one row per invoice and schedule step.

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece;
`ALL_REMINDER_MODELS` lists its tables for schema checks and backups.
"""

from peewee import BigIntegerField, CharField, DateField, ForeignKeyField, IntegerField, TextField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Invoice

# What became of a step: its emails were queued (to nobody when no contact wants them);
# it was passed over for a later step that was already due; or it found the invoice covered
# (autopay will charge it, or pending payments pay it in full) and sent nothing.
STATES = ("sent", "skipped", "held")


class PaymentReminder(BaseModel):
    """One step of the reminder schedule for one invoice: written in the transaction that
    queues its emails, unique per (invoice, step), so no step is ever sent twice."""

    invoice = ForeignKeyField(Invoice, on_delete="CASCADE")
    step = IntegerField()  # days from the due date: -3 is three days before, 7 a week after
    state = CharField(max_length=10, default="sent")
    due_date = DateField()  # the invoice's due date when the step was handled
    balance_cents = BigIntegerField(default=0)  # what was left to pay then
    sent_to = TextField(default="")  # the addresses, one per line
    note = CharField(max_length=255, default="")  # why it was held or skipped
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        table_name = "payment_reminder"
        indexes = ((("invoice", "step"), True),)


ALL_REMINDER_MODELS = [PaymentReminder]
