"""Two-step sign-in (checklist C5): a TOTP code from an authenticator app, for staff and
customers alike; customers may also use passkeys (services/passkeys.py) and single-use
recovery codes.

After the password, a staff login with an authenticator types its current six-digit code;
under `PORTAL_STAFF_MFA=required` a login without one sets it up first (scan a QR code,
type a code to prove it works). A customer login with an authenticator or a passkey proves
one of them after its password; when its company requires two-step sign-in, a login with
neither sets one up first. Secrets are 160 random bits (RFC 4226's recommendation),
stored sealed like quick-pay codes; a code is accepted one step either side of now
(clock drift) and only once (the last step used is kept), and wrong codes count against a
throttle per login, in the database like every other throttle.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import pyotp
from flask import current_app

from ..db import locked, utcnow, write_txn
from ..models import PortalUser, StaffUser
from ..models_two_step import CompanyTwoStep, LoginAuthenticator, Passkey, RecoveryCode
from ..security import digest, seal, unseal
from . import audit, email_templates, settings, throttle
from .auth import end_all_sessions

STEP_SECONDS = 30


@dataclass
class CodeResult:
    ok: bool = False
    locked_until: datetime | None = None


def mode() -> str:
    """`required`, `optional` or `off` (PORTAL_STAFF_MFA)."""
    return current_app.config["STAFF_MFA"]


def next_step(user) -> str | None:
    """What a login must do after its password: `code`, `enroll`, or None."""
    if not user.is_staff:
        if has_two_step(user):
            return "code"
        return "enroll" if company_requires(user.contact.customer_id) else None
    if mode() == "off":
        return None
    if user.totp_secret:
        return "code"
    return "enroll" if mode() == "required" else None


def has_authenticator(user) -> bool:
    """Whether the login has an authenticator app set up."""
    if user.is_staff:
        return bool(user.totp_secret)
    return LoginAuthenticator.select().where(LoginAuthenticator.user == user.id).exists()


def has_two_step(user) -> bool:
    """Whether a customer login has a second step: an authenticator app or a passkey."""
    return has_authenticator(user) or Passkey.select().where(Passkey.user == user.id).exists()


def company_requires(customer_id: int) -> bool:
    """Whether the company requires two-step sign-in of its logins."""
    return (
        CompanyTwoStep.select()
        .where((CompanyTwoStep.customer == customer_id) & CompanyTwoStep.required)
        .exists()
    )


def set_company_rule(by: PortalUser, required: bool) -> bool:
    """A company admin requires (or stops requiring) two-step sign-in for the company's
    logins; logins without it set it up at their next sign-in. True when it changed."""
    customer_id = by.contact.customer_id
    with write_txn():
        if company_requires(customer_id) == required:
            return False
        CompanyTwoStep.insert(
            customer=customer_id, required=required, changed_by=by.id, changed_at=utcnow()
        ).on_conflict(
            conflict_target=[CompanyTwoStep.customer],
            update={
                CompanyTwoStep.required: required,
                CompanyTwoStep.changed_by: by.id,
                CompanyTwoStep.changed_at: utcnow(),
            },
        ).execute()
        audit.record("company.two_step_required", by.contact.customer, actor=by, required=required)
    return True


def new_secret() -> str:
    """A fresh base32 secret of 160 random bits."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// link an authenticator app reads from the QR code."""
    issuer = settings.get("company_name") or "Doorstep"
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=f"{issuer} back office")


def _matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step (now, or one either side) whose code is `code`, if later than `after`."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now = int(time.time()) // STEP_SECONDS
    for step in (now - 1, now, now + 1):
        if (after is None or step > after) and pyotp.utils.strings_equal(
            totp.generate_otp(step), code
        ):
            return step
    return None


def _throttle_key(user) -> str:
    # Staff keep their original key; customers' ids are another sequence.
    return str(user.id) if user.is_staff else f"customer:{user.id}"


def _stored(user) -> tuple[str | None, int | None]:
    """The login's sealed secret and last step used, with its row locked."""
    if user.is_staff:
        row = locked(StaffUser.select().where(StaffUser.id == user.id)).get()
        return row.totp_secret, row.totp_last_step
    row = locked(LoginAuthenticator.select().where(LoginAuthenticator.user == user.id)).first()
    return (row.totp_secret, row.totp_last_step) if row else (None, None)


def _store(user, step: int, sealed: str | None) -> None:
    """Keep the step used (and, when setting up, the sealed secret)."""
    if user.is_staff:
        changes = {StaffUser.totp_last_step: step}
        if sealed:
            changes[StaffUser.totp_secret] = sealed
        StaffUser.update(changes).where(StaffUser.id == user.id).execute()
    elif sealed:
        # A second request setting one up at the same moment keeps the first one's.
        LoginAuthenticator.insert(
            user=user.id, totp_secret=sealed, totp_last_step=step
        ).on_conflict_ignore().execute()
    else:
        LoginAuthenticator.update(totp_last_step=step).where(
            LoginAuthenticator.user == user.id
        ).execute()


def check_code(user, code: str, secret: str | None = None) -> CodeResult:
    """Check a code for the login's authenticator, or for `secret` while setting one up.

    On success the step is stored (the same code never works twice) and, when setting
    up, the sealed secret with it.
    """
    key = _throttle_key(user)
    with write_txn():
        until = throttle.locked_until("mfa-user", key)
        if until:
            return CodeResult(locked_until=until)
        stored_secret, last_step = _stored(user)
        enrolling = secret is not None
        if enrolling and stored_secret:
            # Another request finished the set-up first: this one must not replace it.
            return CodeResult()
        secret = secret or unseal(stored_secret or "")
        step = _matching_step(secret, code, None if enrolling else last_step)
        if secret and step is not None:
            throttle.clear("mfa-user", key)
            _store(user, step, seal(secret) if enrolling else None)
            if enrolling:
                kind = "staff" if user.is_staff else "account"
                audit.record(f"{kind}.two_step_enabled", user, actor=user, method="app")
            return CodeResult(ok=True)
        until = throttle.fail("mfa-user", key)
        audit.record("auth.code_failed", user, enrolling=enrolling)
        return CodeResult(locked_until=until)


# Recovery codes: ten per login, 50 random bits each, shown once and kept as keyed digests.
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _recovery_digest(user, code: str) -> str:
    cleaned = "".join(ch for ch in code.lower() if ch.isalnum())
    return digest(f"recovery:{user.id}:{cleaned}")


def new_recovery_codes(user) -> list[str]:
    """Replace the login's recovery codes with ten new ones; returns them (shown once)."""
    codes = [
        "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]
    with write_txn():
        RecoveryCode.delete().where(RecoveryCode.user == user.id).execute()
        RecoveryCode.insert_many(
            [{"user": user.id, "code_hash": _recovery_digest(user, c)} for c in codes]
        ).execute()
        audit.record("account.recovery_codes_created", user, actor=user)
    return codes


def recovery_codes_left(user) -> int:
    """How many unused recovery codes the login has."""
    return (
        RecoveryCode.select()
        .where((RecoveryCode.user == user.id) & RecoveryCode.used_at.is_null())
        .count()
    )


def use_recovery_code(user, code: str) -> CodeResult:
    """Sign-in with a recovery code instead of the second step: each code works once, and
    wrong ones count against the same throttle as wrong authenticator codes."""
    key = _throttle_key(user)
    with write_txn():
        until = throttle.locked_until("mfa-user", key)
        if until:
            return CodeResult(locked_until=until)
        used = (
            RecoveryCode.update(used_at=utcnow())
            .where(
                (RecoveryCode.user == user.id)
                & (RecoveryCode.code_hash == _recovery_digest(user, code))
                & RecoveryCode.used_at.is_null()
            )
            .execute()
        )
        if used:
            throttle.clear("mfa-user", key)
            audit.record(
                "auth.recovery_code_used", user, actor=user, left=recovery_codes_left(user)
            )
            return CodeResult(ok=True)
        until = throttle.fail("mfa-user", key)
        audit.record("auth.code_failed", user, recovery=True)
        return CodeResult(locked_until=until)


def turn_off_authenticator(user) -> None:
    """A customer removes their authenticator app (My account)."""
    with write_txn():
        LoginAuthenticator.delete().where(LoginAuthenticator.user == user.id).execute()
        forget_codes_without_factor(user)
        audit.record("account.two_step_disabled", user, actor=user, method="app")


def forget_codes_without_factor(user) -> None:
    """Recovery codes mean nothing once no second step is left."""
    if not has_two_step(user):
        RecoveryCode.delete().where(RecoveryCode.user == user.id).execute()


def reset(user, by) -> None:
    """Forget a login's second step (a lost phone): its sessions end, and it sets up a new
    one at its next sign-in when two-step is required. A customer login also loses its
    passkeys and recovery codes, and is told by email."""
    with write_txn():
        if user.is_staff:
            StaffUser.update(totp_secret=None, totp_last_step=None).where(
                StaffUser.id == user.id
            ).execute()
            end_all_sessions(user)
            audit.record("staff.two_step_reset", user, actor=by)
            return
        for model in (LoginAuthenticator, Passkey, RecoveryCode):
            model.delete().where(model.user == user.id).execute()
        end_all_sessions(user)
        audit.record("account.two_step_reset", user, actor=by)
        email_templates.queue("two_step_reset", user.email, name=user.contact.full_name)
