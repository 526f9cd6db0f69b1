"""Statements by email (issue 18): one row per customer and period a statement was emailed.

`statement_mail` is written in the same transaction as the statement emails it records, and
its unique (customer, period) is what makes "never twice": a second worker (or a double
click on "Email statement") inserts nothing and queues nothing. A period is the month of a
monthly statement (`2026-12`) or the day of one staff sent on demand (`2026-12-06`).
"""

from peewee import CharField, DateField, ForeignKeyField, IntegerField, Model, TextField

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class Customer(Model):
        class Meta:
            database = db
            table_name = "customer"

    class StaffUser(Model):
        class Meta:
            database = db
            table_name = "staff_user"

    class StatementMail(Model):
        customer = ForeignKeyField(Customer, on_delete="CASCADE")
        period = CharField(max_length=20)
        start = DateField()
        end = DateField()
        closing_cents = IntegerField(default=0)
        sent_to = TextField(default="")
        staff_user = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
        created_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "statement_mail"
            indexes = ((("customer", "period"), True),)

    db.create_tables([StatementMail])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "statement_mail"')
