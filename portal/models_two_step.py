"""Customer two-step sign-in (migration 0021): an authenticator app, passkeys, recovery
codes, and a company's rule that its logins use two-step sign-in.

Kept beside `models.py` (which holds the rest of the schema) so the slice stays one piece;
`ALL_TWO_STEP_MODELS` lists its tables for schema checks and backups.
"""

from peewee import BigIntegerField, BooleanField, CharField, ForeignKeyField, TextField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel, Customer, PortalUser


class LoginAuthenticator(BaseModel):
    """A portal login's authenticator app: its TOTP secret sealed like quick-pay codes and
    the last time step accepted, so a code works once (the staff columns' twin)."""

    user = ForeignKeyField(PortalUser, unique=True, backref="authenticators", on_delete="CASCADE")
    totp_secret = CharField(max_length=255)
    totp_last_step = BigIntegerField(null=True)
    created_at = UtcDateTimeField(default=utcnow)


class Passkey(BaseModel):
    """A WebAuthn credential of a portal login: a second step, and a sign-in on its own."""

    user = ForeignKeyField(PortalUser, backref="passkeys", on_delete="CASCADE")
    credential_id = CharField(max_length=1400, unique=True)  # base64url, as browsers send it
    public_key = TextField()  # base64url of the COSE key
    sign_count = BigIntegerField(default=0)
    name = CharField(max_length=80, default="")
    transports = CharField(max_length=120, default="")
    created_at = UtcDateTimeField(default=utcnow)
    last_used_at = UtcDateTimeField(null=True)


class RecoveryCode(BaseModel):
    """A single-use recovery code of a portal login, stored only as a keyed digest."""

    user = ForeignKeyField(PortalUser, backref="recovery_codes", on_delete="CASCADE")
    code_hash = CharField(max_length=64, unique=True)
    created_at = UtcDateTimeField(default=utcnow)
    used_at = UtcDateTimeField(null=True)


class CompanyTwoStep(BaseModel):
    """A company's rule: every one of its logins signs in with two steps."""

    customer = ForeignKeyField(Customer, unique=True, backref="two_step_rules", on_delete="CASCADE")
    required = BooleanField(default=False)
    changed_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    changed_at = UtcDateTimeField(default=utcnow)


ALL_TWO_STEP_MODELS = [LoginAuthenticator, Passkey, RecoveryCode, CompanyTwoStep]
