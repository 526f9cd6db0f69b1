"""Saved payment methods: the Stripe Customer of each portal customer, and the cards its
logins saved there (with who saved it, when, and the consent they gave), so the portal lists
them without asking Stripe and can prove the consent."""

from peewee import BooleanField, CharField, ForeignKeyField, IntegerField, Model, TextField

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("customer", "stripe_customer_id", CharField(max_length=255, null=True))
    )

    class Customer(Model):
        class Meta:
            database = db
            table_name = "customer"

    class PortalUser(Model):
        class Meta:
            database = db
            table_name = "portal_user"

    class SavedMethod(Model):
        customer = ForeignKeyField(Customer, backref="saved_methods", on_delete="CASCADE")
        provider = CharField(max_length=30, default="stripe")
        method_id = CharField(max_length=255, unique=True)
        brand = CharField(max_length=30, default="")
        last4 = CharField(max_length=4, default="")
        exp_month = IntegerField(null=True)
        exp_year = IntegerField(null=True)
        saved_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
        consent = TextField(default="")
        saved_at = UtcDateTimeField(default=utcnow)
        active = BooleanField(default=True)
        removed_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "saved_method"

    db.create_tables([SavedMethod])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "saved_method"')
    migrator.migrate(migrator.drop_column("customer", "stripe_customer_id"))
