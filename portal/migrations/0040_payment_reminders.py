"""Payment reminders (issue 18): one row per invoice and reminder step handled.

`payment_reminder` is written in the same transaction as the reminder emails it records, and
its unique (invoice, step) is what makes "never twice": a second worker inserts nothing and
queues nothing. Steps passed over (an invoice already long overdue) and steps held (autopay
will charge it, pending payments cover it) get a row too, so they are never sent later.
"""

from peewee import (
    BigIntegerField,
    CharField,
    DateField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class Invoice(Model):
        class Meta:
            database = db
            table_name = "invoice"

    class PaymentReminder(Model):
        invoice = ForeignKeyField(Invoice, on_delete="CASCADE")
        step = IntegerField()
        state = CharField(max_length=10, default="sent")
        due_date = DateField()
        balance_cents = BigIntegerField(default=0)
        sent_to = TextField(default="")
        note = CharField(max_length=255, default="")
        created_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "payment_reminder"
            indexes = ((("invoice", "step"), True),)

    db.create_tables([PaymentReminder])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "payment_reminder"')
