"""Quick-pay capabilities kept on the server (issue 16 finding 10).

A guest's 15-minute capability to pay one invoice (checklist A8) lived only in the signed
session cookie, so a cookie copied before "Done — close this invoice" kept working until it
expired. Each grant is now a row; "Done" ends it at once, and the cookie only names it.
"""

from peewee import CharField, ForeignKeyField, Model

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class Invoice(Model):
        class Meta:
            database = db
            table_name = "invoice"

    class QuickPayGrant(Model):
        grant_hash = CharField(max_length=64, unique=True)
        invoice = ForeignKeyField(Invoice, on_delete="CASCADE")
        created_at = UtcDateTimeField(default=utcnow)
        expires_at = UtcDateTimeField(index=True)
        ended_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "quick_pay_grant"

    db.create_tables([QuickPayGrant])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "quick_pay_grant"')
