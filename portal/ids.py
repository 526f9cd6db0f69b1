"""Opaque ids in customer-facing URLs (checklist E3).

`/invoices/8c4b…` instead of `/invoices/1042`: a row's id is encrypted with AES under a key
derived from the app's secret key, together with a tag naming what kind of row it is, and
written as 26 base32 characters. Consecutive ids give unrelated tokens, a token cannot be
guessed or computed without the key, and a token for one kind of row (or a made-up one)
fails its tag check and answers 404. This is defence in depth only: every customer query
is still scoped to the signed-in company and sites (E2), which is what keeps another
customer's invoice out of reach. Tokens need no column, no migration and nothing written
by the CSV importer; rotating the secret key changes them (and ends sessions and signed
links, as it always did).

Routes name the kind: `@bp.get("/<opaque('invoice'):invoice_id>")`; views receive the
plain integer id, and `url_for(..., invoice_id=invoice.id)` writes the token.
"""

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app
from werkzeug.routing import BaseConverter, ValidationError

KINDS = ("invoice", "quote", "rfq", "case", "order", "payment", "portal_user")
TOKEN_LENGTH = 26  # 16 bytes in base32, without padding


class OpaqueIds:
    """Turns (kind, id) into a token and back, under one key."""

    def __init__(self, secret_key: str | bytes):
        secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
        key = hmac.new(secret, b"doorstep opaque ids v1", hashlib.sha256).digest()[:16]
        # One 16-byte block, encrypted alone: AES as a keyed permutation, so ECB is right here.
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._tags = {kind: hashlib.sha256(kind.encode()).digest()[:8] for kind in KINDS}

    def encode(self, kind: str, row_id: int) -> str:
        """The token of row `row_id` of `kind`."""
        encryptor = self._cipher.encryptor()
        raw = encryptor.update(int(row_id).to_bytes(8, "big") + self._tags[kind])
        return base64.b32encode(raw + encryptor.finalize()).decode().rstrip("=").lower()

    def decode(self, kind: str, token: str) -> int | None:
        """The row id a token of `kind` stands for, or None for anything else."""
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
            return None
        try:
            raw = base64.b32decode(token.upper() + "======")
        except (binascii.Error, ValueError):
            return None
        decryptor = self._cipher.decryptor()
        block = decryptor.update(raw) + decryptor.finalize()
        if not hmac.compare_digest(block[8:], self._tags[kind]):
            return None
        return int.from_bytes(block[:8], "big")


def ids() -> OpaqueIds:
    return current_app.extensions["opaque_ids"]


def public_id(kind: str, row_id: int) -> str:
    """The token of a row, as URLs show it."""
    return ids().encode(kind, row_id)


def from_public_id(kind: str, token) -> int | None:
    """The row id behind a token from a form or query string, or None."""
    return ids().decode(kind, token) if token else None


class OpaqueIdConverter(BaseConverter):
    """`<opaque('invoice'):invoice_id>`: a token in the URL, an int in the view."""

    regex = f"[a-z2-7]{{{TOKEN_LENGTH}}}"

    def __init__(self, url_map, kind: str):
        super().__init__(url_map)
        if kind not in KINDS:
            raise ValueError(f"unknown opaque id kind {kind!r}")
        self.kind = kind

    def to_python(self, value: str) -> int:
        row_id = ids().decode(self.kind, value)
        if row_id is None:
            raise ValidationError()  # no route matches: 404
        return row_id

    def to_url(self, value) -> str:
        return ids().encode(self.kind, int(value))


def init_app(app) -> None:
    """Register the converter (before any blueprint adds its routes) and the key."""
    app.extensions["opaque_ids"] = OpaqueIds(app.config["SECRET_KEY"])
    app.url_map.converters["opaque"] = OpaqueIdConverter
