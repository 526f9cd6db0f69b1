"""Customer two-step sign-in: authenticator apps, passkeys (WebAuthn), recovery codes and
a company's rule that its logins use two-step sign-in."""

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    ForeignKeyField,
    Model,
    TextField,
)

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class Customer(Model):
        class Meta:
            database = db
            table_name = "customer"

    class PortalUser(Model):
        class Meta:
            database = db
            table_name = "portal_user"

    class LoginAuthenticator(Model):
        user = ForeignKeyField(PortalUser, unique=True, on_delete="CASCADE")
        totp_secret = CharField(max_length=255)
        totp_last_step = BigIntegerField(null=True)
        created_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "login_authenticator"

    class Passkey(Model):
        user = ForeignKeyField(PortalUser, on_delete="CASCADE")
        credential_id = CharField(max_length=1400, unique=True)
        public_key = TextField()
        sign_count = BigIntegerField(default=0)
        name = CharField(max_length=80, default="")
        transports = CharField(max_length=120, default="")
        created_at = UtcDateTimeField(default=utcnow)
        last_used_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "passkey"

    class RecoveryCode(Model):
        user = ForeignKeyField(PortalUser, on_delete="CASCADE")
        code_hash = CharField(max_length=64, unique=True)
        created_at = UtcDateTimeField(default=utcnow)
        used_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "recovery_code"

    class CompanyTwoStep(Model):
        customer = ForeignKeyField(Customer, unique=True, on_delete="CASCADE")
        required = BooleanField(default=False)
        changed_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
        changed_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "company_two_step"

    db.create_tables([LoginAuthenticator, Passkey, RecoveryCode, CompanyTwoStep])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "company_two_step"')
    db.execute_sql('DROP TABLE IF EXISTS "recovery_code"')
    db.execute_sql('DROP TABLE IF EXISTS "passkey"')
    db.execute_sql('DROP TABLE IF EXISTS "login_authenticator"')
