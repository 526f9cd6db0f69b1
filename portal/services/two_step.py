"""Staff two-step sign-in (checklist C5): a TOTP code from an authenticator app.

After the password, a staff login with an authenticator types its current six-digit code;
under `PORTAL_STAFF_MFA=required` a login without one sets it up first (scan a QR code,
type a code to prove it works). Secrets are 160 random bits (RFC 4226's recommendation),
stored sealed like quick-pay codes; a code is accepted one step either side of now
(clock drift) and only once (the last step used is kept), and wrong codes count against a
throttle per login, in the database like every other throttle.
"""

import time
from dataclasses import dataclass
from datetime import datetime

import pyotp
from flask import current_app

from ..db import locked, write_txn
from ..models import StaffUser
from ..security import seal, unseal
from . import audit, settings, throttle
from .auth import end_all_sessions

STEP_SECONDS = 30


@dataclass
class CodeResult:
    ok: bool = False
    locked_until: datetime | None = None


def mode() -> str:
    """`required`, `optional` or `off` (PORTAL_STAFF_MFA)."""
    return current_app.config["STAFF_MFA"]


def next_step(user: StaffUser) -> str | None:
    """What a staff login must do after its password: `code`, `enroll`, or None."""
    if mode() == "off":
        return None
    if user.totp_secret:
        return "code"
    return "enroll" if mode() == "required" else None


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


def check_code(user: StaffUser, code: str, secret: str | None = None) -> CodeResult:
    """Check a code for the login's authenticator, or for `secret` while setting one up.

    On success the step is stored (the same code never works twice) and, when setting
    up, the sealed secret with it.
    """
    key = str(user.id)
    with write_txn():
        until = throttle.locked_until("mfa-user", key)
        if until:
            return CodeResult(locked_until=until)
        current = locked(StaffUser.select().where(StaffUser.id == user.id)).get()
        enrolling = secret is not None
        if enrolling and current.totp_secret:
            # Another request finished the set-up first: this one must not replace it.
            return CodeResult()
        secret = secret or unseal(current.totp_secret or "")
        step = _matching_step(secret, code, None if enrolling else current.totp_last_step)
        if secret and step is not None:
            throttle.clear("mfa-user", key)
            changes = {StaffUser.totp_last_step: step}
            if enrolling:
                changes[StaffUser.totp_secret] = seal(secret)
            StaffUser.update(changes).where(StaffUser.id == user.id).execute()
            if enrolling:
                audit.record("staff.two_step_enabled", current, actor=current)
            return CodeResult(ok=True)
        until = throttle.fail("mfa-user", key)
        audit.record("auth.code_failed", current, enrolling=enrolling)
        return CodeResult(locked_until=until)


def reset(user: StaffUser, by) -> None:
    """Forget a login's authenticator (a lost phone): its sessions end, and it sets up a new
    one at its next sign-in."""
    with write_txn():
        StaffUser.update(totp_secret=None, totp_last_step=None).where(
            StaffUser.id == user.id
        ).execute()
        end_all_sessions(user)
        audit.record("staff.two_step_reset", user, actor=by)
