"""Statements emailed to customers (migration 0032): one row per customer and period.

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece;
`ALL_STATEMENT_MAIL_MODELS` lists its tables for schema checks and backups.
"""

from peewee import CharField, DateField, ForeignKeyField, IntegerField, TextField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Customer, StaffUser


class StatementMail(BaseModel):
    """A customer's statement for one period went out (or found nobody to go to): written in
    the transaction that queues its emails, unique per (customer, period)."""

    customer = ForeignKeyField(Customer, on_delete="CASCADE")
    period = CharField(max_length=20)  # "2026-12" monthly, "2026-12-06" on demand
    start = DateField()
    end = DateField()
    closing_cents = IntegerField(default=0)
    sent_to = TextField(default="")  # the addresses, one per line ("" when nobody wanted it)
    staff_user = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")  # on demand
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        table_name = "statement_mail"
        indexes = ((("customer", "period"), True),)


ALL_STATEMENT_MAIL_MODELS = [StatementMail]
