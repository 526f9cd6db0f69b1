"""Reply addresses of case emails: `reply+<case>.<contact>.<signature>@<domain>`.

With `PORTAL_REPLY_BY_EMAIL` on, each case email to a contact carries one as its Reply-To
(`headers`), and `flask inbound` (services/inbound.py) takes the replies sent to it.

The token is the case's and the recipient contact's ids in base 36 and an HMAC-SHA256 of
them made by itsdangerous's `Signer` (key derived from `SECRET_KEY` with a salt of its own),
cut to 120 bits and written in lower-case base 32: 24 characters that no mail server damages
by folding the case of a local part. The whole local part stays under 50 characters for
ids below 36^7 (78 billion); RFC 5321 allows 64. The domain is `PORTAL_INBOUND_DOMAIN`, else
the domain of `PORTAL_MAIL_FROM`.

An address has no expiry: it grants nothing by itself. Every reply is checked against the
case and its sender as they are when it arrives (services/inbound.py), and the signature only
proves the portal made the address. Changing `SECRET_KEY` ends every address already sent.
"""

import base64
import hashlib
import hmac
from email.utils import parseaddr

from flask import current_app
from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import want_bytes

from ..models import Case, Contact

# Defaults of the settings this module reads (`PORTAL_<NAME>` overrides each).
DEFAULTS = {
    "REPLY_BY_EMAIL": False,  # case emails carry a reply address (run `flask inbound`)
    "INBOUND_DOMAIN": "",  # "": the domain of MAIL_FROM
    "INBOUND_HOST": "127.0.0.1",
    "INBOUND_PORT": 2525,
    "INBOUND_MAX_BYTES": 25 * 1024 * 1024,  # a bigger message is refused by the server
    "INBOUND_LANGUAGES": "en",  # mail-parser-reply's languages for quoted history
}

PREFIX = "reply+"
SALT = "doorstep.reply-by-email"


def setting(name: str):
    """A reply-by-email setting from the app's config, or its default here."""
    return current_app.config.get(name, DEFAULTS[name])


def domain() -> str:
    """The domain of reply addresses."""
    configured = str(setting("INBOUND_DOMAIN") or "").strip().lower()
    if configured:
        return configured
    sender = parseaddr(current_app.config["MAIL_FROM"])[1]
    return sender.rpartition("@")[2].lower() or "localhost"


class _ReplySigner(Signer):
    """itsdangerous's Signer with a signature that survives mail servers: lower-case base 32
    of the HMAC-SHA256, cut to 120 bits (24 characters)."""

    def get_signature(self, value) -> bytes:
        mac = self.algorithm.get_signature(self.derive_key(), want_bytes(value))
        return base64.b32encode(mac[:15]).lower()

    def verify_signature(self, value, sig) -> bool:
        return hmac.compare_digest(want_bytes(sig).lower(), self.get_signature(value))


def _signer() -> _ReplySigner:
    return _ReplySigner(
        current_app.config["SECRET_KEY"], salt=SALT, sep=".", digest_method=hashlib.sha256
    )


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def enabled() -> bool:
    """Whether case emails carry a reply address."""
    return bool(setting("REPLY_BY_EMAIL"))


def reply_address(case, contact) -> str:
    """The address a reply to an email about `case` sent to `contact` goes to."""
    value = f"{_b36(case.id)}.{_b36(contact.id)}"
    token = _signer().sign(value).decode()
    return f"{PREFIX}{token}@{domain()}"


def headers(case, contact) -> dict:
    """The Reply-To header of a case email to `contact` (none while replies are off)."""
    if not enabled() or contact is None:
        return {}
    return {"Reply-To": reply_address(case, contact)}


def read(address: str):
    """(case, contact) named by a reply address with a valid signature, else None."""
    local, _, host = (address or "").strip().strip("<>").lower().rpartition("@")
    if host != domain() or not local.startswith(PREFIX):
        return None
    try:
        value = _signer().unsign(local.removeprefix(PREFIX)).decode()
        case_id, contact_id = (int(part, 36) for part in value.split("."))
    except (BadSignature, ValueError, UnicodeDecodeError):
        return None
    case = Case.get_or_none(Case.id == case_id)
    contact = Contact.get_or_none(Contact.id == contact_id)
    if case is None or contact is None or contact.customer_id != case.customer_id:
        return None
    return case, contact
