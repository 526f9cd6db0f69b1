"""Autopay: a company's enrolment (saved card, maximum per invoice, when to charge), every
acceptance of the autopay authorisation with its words, and one charge row per invoice, unique,
so autopay charges an invoice once even if two workers or a restarted one look at it."""

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    def table(name):
        class Meta:
            database = db
            table_name = name

        return type(name, (Model,), {"Meta": Meta})

    # (Other names than the fields': a class body looks its own names up, not ours.)
    customer_t, user_t, method_t = table("customer"), table("portal_user"), table("saved_method")
    invoice_t, attempt_t = table("invoice"), table("payment_attempt")

    class Autopay(Model):
        customer = ForeignKeyField(customer_t, unique=True, on_delete="CASCADE")
        method = ForeignKeyField(method_t, null=True, on_delete="SET NULL")
        max_cents = BigIntegerField()
        currency = CharField(max_length=3, default="USD")
        timing = CharField(max_length=10, default="due")
        days_before = IntegerField(default=0)
        active = BooleanField(default=True)
        starts_on = DateField()
        enrolled_by = ForeignKeyField(user_t, null=True, on_delete="SET NULL")
        enrolled_at = UtcDateTimeField(default=utcnow)
        failures = IntegerField(default=0)
        stopped_at = UtcDateTimeField(null=True)
        stopped_reason = CharField(max_length=255, default="")
        updated_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "autopay"

    class AutopayConsent(Model):
        customer = ForeignKeyField(customer_t, on_delete="CASCADE")
        user = ForeignKeyField(user_t, null=True, on_delete="SET NULL")
        version = IntegerField()
        text = TextField()
        accepted_at = UtcDateTimeField(default=utcnow)
        ip = CharField(max_length=64, default="")

        class Meta:
            database = db
            table_name = "autopay_consent"

    class AutopayCharge(Model):
        customer = ForeignKeyField(customer_t, on_delete="CASCADE")
        invoice = ForeignKeyField(invoice_t, unique=True, on_delete="CASCADE")
        amount_cents = BigIntegerField()
        state = CharField(max_length=12, default="charging", index=True)
        tries = IntegerField(default=0)
        next_try_at = UtcDateTimeField(null=True)
        attempt = ForeignKeyField(attempt_t, null=True, on_delete="SET NULL")
        last_error = CharField(max_length=255, default="")
        created_at = UtcDateTimeField(default=utcnow)
        updated_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "autopay_charge"

    db.create_tables([Autopay, AutopayConsent, AutopayCharge])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "autopay_charge"')
    db.execute_sql('DROP TABLE IF EXISTS "autopay_consent"')
    db.execute_sql('DROP TABLE IF EXISTS "autopay"')
