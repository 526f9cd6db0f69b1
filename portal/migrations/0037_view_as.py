"""Staff "view as customer" (issue 19): one row per read-only view of the portal.

`view_as_grant` is what a staff session's view rests on: who, which customer and login (none:
the whole account), bound to the staff sign-in that started it, until it expires or stops.
"""

from peewee import CharField, ForeignKeyField, Model

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

    class PortalUser(Model):
        class Meta:
            database = db
            table_name = "portal_user"

    class ViewAsGrant(Model):
        staff_user = ForeignKeyField(StaffUser, on_delete="CASCADE")
        customer = ForeignKeyField(Customer, on_delete="CASCADE")
        portal_user = ForeignKeyField(PortalUser, null=True, on_delete="CASCADE")
        session_hash = CharField(max_length=64, index=True)
        started_at = UtcDateTimeField(default=utcnow)
        expires_at = UtcDateTimeField()
        ended_at = UtcDateTimeField(null=True)
        end_reason = CharField(max_length=20, default="")

        class Meta:
            database = db
            table_name = "view_as_grant"

    db.create_tables([ViewAsGrant])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "view_as_grant"')
