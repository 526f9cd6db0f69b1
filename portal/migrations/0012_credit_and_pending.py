"""Customer credit you can see and use, and offline payments confirmed as received.

- `payment_application.source`: `payment` for what a payment paid when it arrived,
  `credit` for credit applied later from the payment's unapplied part (by the customer or
  staff); `posted_at` marks a credit application exported to the books.
- `refund`: money given back from a payment's unapplied credit, recorded by staff.
- `payment.intended_cents`: what the payer said they would send (an offline payment); the
  payment's `amount_cents` is what actually arrived once staff confirm it.
- A partial index of payments holding credit, for the per-customer "credit available" sum.
"""

from peewee import (
    BigIntegerField,
    CharField,
    Check,
    ForeignKeyField,
    Model,
    TextField,
)

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    migrator.migrate(
        migrator.add_column(
            "payment_application", "source", CharField(max_length=10, default="payment")
        ),
        migrator.add_column("payment_application", "posted_at", UtcDateTimeField(null=True)),
        migrator.add_column("payment", "intended_cents", BigIntegerField(null=True)),
    )

    class Payment(Model):
        class Meta:
            database = db
            table_name = "payment"

    class StaffUser(Model):
        class Meta:
            database = db
            table_name = "staff_user"

    class Refund(Model):
        payment = ForeignKeyField(Payment, backref="refunds", on_delete="RESTRICT")
        amount_cents = BigIntegerField(constraints=[Check("amount_cents > 0")])
        reference = CharField(max_length=100, default="")
        note = TextField(default="")
        staff_user = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
        created_at = UtcDateTimeField(default=utcnow)
        posted_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "refund"

    db.create_tables([Refund])
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS payment_with_credit ON payment (customer_id) "
        "WHERE status = 'applied' AND unapplied_cents > 0"
    )


def down(migrator, db):
    db.execute_sql("DROP INDEX IF EXISTS payment_with_credit")
    db.execute_sql('DROP TABLE IF EXISTS "refund"')
    migrator.migrate(
        migrator.drop_column("payment", "intended_cents"),
        migrator.drop_column("payment_application", "posted_at"),
        migrator.drop_column("payment_application", "source"),
    )
