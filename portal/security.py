"""Password and secret hashing (argon2id), sealing of printable secrets, and secret generation."""

import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

# Crockford base32 without I, L, O, U: nothing to confuse when read off paper.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# Quick-pay codes carry 60 random bits, so a light argon2id (1 pass, 32 KiB, ~0.04 ms on one
# core) already puts an offline search of one code at over 700,000 core-years (2^59 tries on
# average), while a million imported invoices hash in about 20 s on two cores (issue 15: 256
# KiB cost 75 s of a 1M import's two-minute budget for no protection a 60-bit code needs).
# Passwords are chosen by people and get the full cost. Older hashes carry their own
# parameters and still verify.
CODE_HASHER = PasswordHasher(time_cost=1, memory_cost=32, parallelism=1)


def _password_hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config["ARGON2_TIME_COST"],
        memory_cost=config["ARGON2_MEMORY_COST"],
        parallelism=config["ARGON2_PARALLELISM"],
    )


def hash_secret(secret: str) -> str:
    """Hash a password with argon2id and a random salt."""
    return _password_hasher().hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Check a password; a missing hash costs the same as a wrong password (checklist A2)."""
    return _verify(_password_hasher(), stored_hash, secret)


def needs_rehash(stored_hash: str) -> bool:
    """True when a password hash was made with other (older or lighter) argon2 parameters."""
    try:
        return _password_hasher().check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def hash_code(code: str) -> str:
    """Hash a normalized quick-pay code with argon2id and a random salt (checklist A3)."""
    return CODE_HASHER.hash(code)


def verify_code(stored_hash: str | None, code: str) -> bool:
    """Check a quick-pay code; a missing invoice costs the same as a wrong code (A2)."""
    return _verify(CODE_HASHER, stored_hash, code)


def _verify(hasher: PasswordHasher, stored_hash: str | None, secret: str) -> bool:
    try:
        return hasher.verify(stored_hash or _dummy_hash(hasher), secret) and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash(hasher: PasswordHasher) -> str:
    # One per parameter set, so an unknown user or invoice does the same argon2 work.
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    cache = current_app.extensions.setdefault("dummy_hashes", {})
    if key not in cache:
        cache[key] = hasher.hash(secrets.token_urlsafe(16))
    return cache[key]


def new_quick_pay_code() -> str:
    """A quick-pay code: 12 Crockford base32 characters from `secrets` (60 bits, checklist A3)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))


def normalize_code(code: str) -> str:
    """Read a code as typed: ignore case, spaces and dashes; map look-alikes (O->0, I/L->1)."""
    code = "".join(ch for ch in code.upper() if ch.isalnum())
    return code.translate(str.maketrans("OIL", "011"))


def format_code(code: str) -> str:
    """Group a code in fours for printing: `ABCD-EFGH-JKMN`."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def new_stamp() -> str:
    """A random stamp that binds signed links and sessions to the current state of a login."""
    return secrets.token_hex(16)


def digest(value: str) -> str:
    """A keyed SHA-256 of a value, for storing lookup keys (throttle keys, session keys)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=8)
def _sealer(secret: str) -> AESGCM:
    # One cipher per secret key, not one per call: an import seals a million codes.
    return AESGCM(hashlib.sha256(b"doorstep-seal:" + secret.encode()).digest())


def _seal_cipher() -> AESGCM:
    return _sealer(current_app.config["SECRET_KEY"])


def seal(value: str) -> str:
    """Encrypt a short secret (AES-GCM) with a key derived from SECRET_KEY."""
    nonce = secrets.token_bytes(12)
    box = _seal_cipher().encrypt(nonce, value.encode(), b"doorstep")
    return base64.urlsafe_b64encode(nonce + box).decode()


def unseal(sealed: str) -> str | None:
    """Decrypt what `seal` made; None when it was sealed under another key or is empty."""
    if not sealed:
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return _seal_cipher().decrypt(raw[:12], raw[12:], b"doorstep").decode()
    except Exception:
        return None
