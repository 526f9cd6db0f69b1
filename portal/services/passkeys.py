"""Passkeys (WebAuthn) for customer logins, through Duo Labs' `webauthn` package.

A passkey is the better second step (it cannot be phished: the browser binds it to this
site) and, with the authenticator's own user verification (a PIN, a fingerprint), a whole
sign-in without a password. The relying party is the portal's configured address
(`PORTAL_BASE_URL`): its host is the RP ID, its origin the only origin accepted (B6: never
the request's Host header). Each ceremony's challenge is made here, kept in the session
and used once; a signature counter that goes backwards refuses the passkey (a clone).
"""

import json
from urllib.parse import urlsplit

import webauthn
from flask import current_app, session
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..db import utcnow, write_txn
from ..models import Contact, Customer, PortalUser
from ..models_two_step import Passkey
from ..security import digest
from . import audit, settings
from .two_step import forget_codes_without_factor

CHALLENGE = "_webauthn"
TIMEOUT_MS = 120_000


class PasskeyError(Exception):
    """A ceremony that did not prove anything; the message is safe to show."""


def rp_id() -> str:
    return urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"


def origin() -> str:
    parts = urlsplit(current_app.config["BASE_URL"])
    return f"{parts.scheme}://{parts.netloc}"


def user_handle(user: PortalUser) -> bytes:
    """The opaque id the authenticator keeps for the login: no email, no sequential id."""
    return digest(f"webauthn-user:{user.id}")[:32].encode()


def passkeys_of(user: PortalUser) -> list[Passkey]:
    return list(Passkey.select().where(Passkey.user == user.id).order_by(Passkey.id))


def _remember(purpose: str, challenge: bytes, user: PortalUser | None) -> None:
    session[CHALLENGE] = {
        "purpose": purpose,
        "challenge": bytes_to_base64url(challenge),
        "uid": user.id if user else None,
    }


def _take(purpose: str, user: PortalUser | None) -> bytes:
    """The challenge of this ceremony, removed from the session (single use)."""
    data = session.pop(CHALLENGE, None) or {}
    if data.get("purpose") != purpose or data.get("uid") != (user.id if user else None):
        raise PasskeyError("That took too long or was started elsewhere. Please try again.")
    return webauthn.base64url_to_bytes(data["challenge"])


def registration_options(user: PortalUser) -> str:
    """The options (JSON) for `navigator.credentials.create()` adding a passkey to a login."""
    options = webauthn.generate_registration_options(
        rp_id=rp_id(),
        rp_name=settings.get("portal_name") or "Doorstep",
        user_id=user_handle(user),
        user_name=user.email,
        user_display_name=user.display_name or user.email,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(p.credential_id))
            for p in passkeys_of(user)
        ],
    )
    _remember("register", options.challenge, user)
    return webauthn.options_to_json(options)


def _name(raw: str) -> str:
    """A name the person recognises the passkey by; control characters never kept."""
    name = " ".join("".join(ch for ch in (raw or "") if ch.isprintable()).split())[:80]
    return name or "Passkey"


def register(user: PortalUser, credential: dict, name: str = "") -> Passkey:
    """Verify the browser's answer to `registration_options` and keep the passkey."""
    challenge = _take("register", user)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=origin(),
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        audit.record("account.passkey_refused", user, actor=user, reason=str(exc)[:200])
        raise PasskeyError("The passkey could not be added. Please try again.") from exc
    transports = credential.get("response", {}).get("transports") or []
    with write_txn():
        passkey = Passkey.create(
            user=user.id,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            name=_name(name),
            transports=",".join(str(t) for t in transports if isinstance(t, str))[:120],
        )
        audit.record("account.two_step_enabled", user, actor=user, method="passkey")
    return passkey


def authentication_options(user: PortalUser | None) -> str:
    """The options (JSON) for `navigator.credentials.get()`: the login's own passkeys as a
    second step, or any passkey of this site for a sign-in without a password (`None`)."""
    allowed = [
        PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(p.credential_id))
        for p in (passkeys_of(user) if user else [])
    ]
    options = webauthn.generate_authentication_options(
        rp_id=rp_id(),
        timeout=TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=(
            UserVerificationRequirement.PREFERRED if user else UserVerificationRequirement.REQUIRED
        ),
    )
    _remember("sign-in", options.challenge, user)
    return webauthn.options_to_json(options)


def _find(credential: dict) -> Passkey | None:
    raw_id = credential.get("rawId") or credential.get("id") or ""
    if not isinstance(raw_id, str) or len(raw_id) > 1400:
        return None
    return (
        Passkey.select(Passkey, PortalUser, Contact, Customer)
        .join(PortalUser)
        .join(Contact)
        .join(Customer)
        .where(Passkey.credential_id == raw_id)
        .first()
    )


def authenticate(credential: dict, user: PortalUser | None = None) -> PortalUser:
    """Verify the browser's answer to `authentication_options`; the login it proves.

    With `user` (the second step) the passkey must be that login's; without (no password)
    the authenticator must have verified its user, and the passkey must name its login.
    """
    challenge = _take("sign-in", user)
    passkey = _find(credential if isinstance(credential, dict) else {})
    failure = PasskeyError("That passkey did not sign you in.")
    if passkey is None or (user is not None and passkey.user_id != user.id):
        audit.record("auth.passkey_failed", user)
        raise failure
    owner = passkey.user
    handle = (credential.get("response") or {}).get("userHandle")
    if user is None and handle != bytes_to_base64url(user_handle(owner)):
        audit.record("auth.passkey_failed", owner)
        raise failure
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=origin(),
            credential_public_key=webauthn.base64url_to_bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=user is None,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        audit.record("auth.passkey_failed", owner, reason=str(exc)[:200])
        raise failure from exc
    with write_txn():
        Passkey.update(sign_count=verified.new_sign_count, last_used_at=utcnow()).where(
            Passkey.id == passkey.id
        ).execute()
    return owner


def remove(user: PortalUser, credential_id: str) -> Passkey | None:
    """Remove one of the login's passkeys (My account); None when it is not theirs."""
    passkey = Passkey.get_or_none(
        (Passkey.credential_id == (credential_id or "")[:1400]) & (Passkey.user == user.id)
    )
    if passkey is None:
        return None
    with write_txn():
        passkey.delete_instance()
        forget_codes_without_factor(user)
        audit.record("account.passkey_removed", user, actor=user, name=passkey.name)
    return passkey


def parse(body: str | bytes | None) -> dict:
    """The credential a browser posted (JSON), or {}."""
    try:
        value = json.loads(body or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
