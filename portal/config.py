"""Configuration: defaults, `PORTAL_*` environment variables, and derived settings."""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit


class Defaults:
    """Values every app starts from; `PORTAL_<NAME>` in the environment overrides each."""

    BASE_URL = "http://127.0.0.1:5000"
    MAIL_URL = ""
    MAIL_FROM = "portal@localhost"
    PAYMENT_PROVIDERS = "offline"
    # Stripe (provider `stripe`): keys from the environment only; API base unset in production
    # (the test suite points it at its own loopback fake).
    STRIPE_SECRET_KEY = ""
    STRIPE_WEBHOOK_SECRET = ""
    STRIPE_PUBLISHABLE_KEY = ""
    STRIPE_API_BASE = ""
    RATELIMIT_STORAGE_URI = "memory://"
    # How many reverse proxies sit in front of the portal (sets ProxyFix; 0 = none).
    TRUSTED_PROXIES = 0
    # SQLite `synchronous`: FULL keeps acknowledged payments across a power loss.
    SQLITE_SYNCHRONOUS = "full"
    # PostgreSQL pool size per process.
    DATABASE_MAX_CONNECTIONS = 16
    # argon2id parameters for passwords and quick-pay codes (OWASP's second option:
    # 19 MiB, 2 iterations, 1 lane); tests lower them to keep the suite fast.
    ARGON2_TIME_COST = 2
    ARGON2_MEMORY_COST = 19 * 1024
    ARGON2_PARALLELISM = 1
    # Signed-in sessions: absolute lifetime and idle timeout (server-side, see LoginSession).
    SESSION_LIFETIME = timedelta(hours=12)
    SESSION_IDLE_TIMEOUT = timedelta(hours=2)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    # Settings and staff-login changes need the password typed this recently (checklist C6).
    FRESH_LOGIN_TIMEOUT = timedelta(minutes=30)
    # Staff two-step sign-in with an authenticator app (TOTP, checklist C5): `required`
    # (every staff login sets it up at its next sign-in), `optional` (only those who set it
    # up are asked; the demo), or `off`.
    STAFF_MFA = "required"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_NAME = "doorstep_session"
    # Force Secure, `__Host-`-prefixed cookies even when BASE_URL is not https (a TLS proxy
    # in front of a portal configured with an http base URL); https base URLs imply it.
    SECURE_COOKIES = False
    REMEMBER_COOKIE_DURATION = timedelta(days=1)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # A long-lived page (a statement left open) must still be able to POST.
    WTF_CSRF_TIME_LIMIT = 8 * 3600
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    # Outbox delivery (portal/services/outbox.py): the SMTP timeout per step, the first
    # back-off (doubling on each transient failure up to the cap), and how long transient
    # failures are retried before the message is failed for staff.
    MAIL_TIMEOUT_SECONDS = 10
    MAIL_RETRY_SECONDS = 60
    MAIL_RETRY_MAX_SECONDS = 3600
    MAIL_GIVE_UP_DAYS = 5
    # Deliver right after the commit that queued a message (the worker retries failures).
    MAIL_SEND_ON_COMMIT = True
    # The worker's last pass older than this shows as stale in /readyz and the back office.
    WORKER_STALE_SECONDS = 300


def load_secret_key(instance_path: str) -> str:
    """Return the key kept in `instance/secret_key`, generating it (mode 0600) on first use.

    Several processes may start together on a fresh instance folder (gunicorn's workers,
    the release step, the worker): the key is written to a private file first and linked
    into place, so exactly one process's key wins and nobody reads a half-written file.
    """
    path = Path(instance_path) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    partial = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(partial, path)
    except FileExistsError:  # another process got there first: its key is the key
        key = path.read_text().strip()
    finally:
        os.unlink(partial)
    return key


# Keys people paste from tutorials; any explicit key must also be at least this long.
WEAK_KEYS = {"dev", "development", "secret", "changeme", "change-me", "please-change-me"}
MIN_KEY_LENGTH = 32


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def finalize(app) -> None:
    """Fill in what depends on other values: secret key, database URL, cookie security."""
    config = app.config
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = load_secret_key(app.instance_path)
    elif (
        str(config["SECRET_KEY"]).lower() in WEAK_KEYS or len(config["SECRET_KEY"]) < MIN_KEY_LENGTH
    ):
        # Checklist K4: a guessable key forges sessions, links and opaque ids alike.
        raise ValueError(
            f"PORTAL_SECRET_KEY is too weak: use at least {MIN_KEY_LENGTH} random characters, "
            "or leave it unset and one is generated into instance/secret_key"
        )
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "portal.db")
    https = urlsplit(config["BASE_URL"]).scheme == "https"
    if https:
        config["PREFERRED_URL_SCHEME"] = "https"
    if https or _truthy(config.get("SECURE_COOKIES")):
        # Served over TLS: cookies never travel in clear (checklist D1, D2). The `__Host-`
        # prefix makes browsers refuse the cookie unless it is Secure, has path / and no
        # Domain, so a sibling subdomain cannot plant or shadow the session.
        config["SESSION_COOKIE_SECURE"] = config["REMEMBER_COOKIE_SECURE"] = True
        config["SESSION_COOKIE_NAME"] = "__Host-session"
        config["SESSION_COOKIE_PATH"] = "/"
        config["SESSION_COOKIE_DOMAIN"] = None
        config["REMEMBER_COOKIE_NAME"] = "__Host-remember_token"
        config["REMEMBER_COOKIE_PATH"] = "/"
        config["REMEMBER_COOKIE_DOMAIN"] = None
    if config["STAFF_MFA"] not in ("required", "optional", "off"):
        raise ValueError("PORTAL_STAFF_MFA must be required, optional or off")
    providers = config["PAYMENT_PROVIDERS"]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    config["PAYMENT_PROVIDERS"] = list(providers)
    if "stripe" in config["PAYMENT_PROVIDERS"]:
        # Keys come from the environment only: never the database, a page or a log.
        for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
            if not config.get(name):
                raise ValueError(f"PORTAL_PAYMENT_PROVIDERS has stripe: set PORTAL_{name}")
