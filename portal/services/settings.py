"""Portal settings: typed defaults, stored overrides, read once per request.

Every value has the type of its default; `save_in_txn` refuses anything else, so a typo in
a caller cannot store a string where a switch is read. Staff changes go through `update`,
which also versions the login terms and audits each change old -> new.
"""

import json
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import g, has_request_context

from ..db import write_txn
from ..models import PORTAL_ROLES, Setting
from . import audit
from .reminder_schedule import check_schedule

DEFAULTS = {
    "portal_name": "Doorstep",
    "company_name": "Northwind Services",
    "contact_email": "billing@example.com",
    "contact_phone": "",
    "time_zone": "UTC",
    "bulletin_message": "",
    "login_message": "",
    "login_terms": "",
    "login_terms_version": 0,
    "require_terms_acceptance": False,
    "payment_instructions": (
        "Pay by bank transfer to account 12-3456-7890123, quoting the invoice number, "
        "or mail a cheque to our office."
    ),
    "payment_terms": "",
    "require_payment_terms_acceptance": False,
    "quick_pay_enabled": True,
    "quick_pay_account_number": False,
    "partial_payments": True,
    "minimum_partial_cents": 1000,
    "self_registration": True,
    "request_access": True,
    "quick_requests": True,
    "module_invoices": True,
    "module_statements": True,
    "module_quotes": True,
    "module_orders": True,
    "module_cases": True,
    "default_roles": ["invoices", "statements", "quotes", "orders", "cases"],
    # Case attachments: the largest file and the most files on one message.
    "attachment_max_mb": 10,
    "attachment_max_files": 5,
    # What customers choose from when they open a case (none: no question asked).
    "case_categories": ["Billing", "Delivery", "Service request", "Other"],
    # Statements by email: the day of the month (1-28) the worker sends them; 0 is off.
    "statement_day": 0,
    # Payment reminders: off until staff turn them on; days from the due date (-3 is three
    # days before it, 7 a week after), each sent once per invoice (services/reminders.py).
    "payment_reminders": False,
    "reminder_schedule": [-3, 0, 7, 30],
}


_LOAD_SQL = 'SELECT "key", "value" FROM "setting"'


def load() -> dict:
    """All settings, defaults overlaid with stored values; cached for the current request."""
    if has_request_context() and "portal_settings" in g:
        return g.portal_settings
    values = dict(DEFAULTS)
    # Raw SQL: this runs on every request and the query never changes.
    for key, value in Setting._meta.database.execute_sql(_LOAD_SQL).fetchall():
        if key in DEFAULTS:
            values[key] = json.loads(value)
    if has_request_context():
        g.portal_settings = values
    return values


def get(key: str):
    """One setting's value."""
    return load()[key]


def payment_terms_acceptance_required() -> bool:
    """True when payers must tick "I accept the payment terms": staff switched it on and
    wrote terms to accept (without terms the switch does nothing)."""
    values = load()
    return bool(values["require_payment_terms_acceptance"] and values["payment_terms"].strip())


def save(changes: dict) -> dict:
    """Store changed settings in their own transaction; returns {key: (old, new)} of changes."""
    with write_txn():
        return save_in_txn(changes)


def check(key: str, value) -> None:
    """Raise KeyError for an unknown key, ValueError for a value of the wrong type or range."""
    if key not in DEFAULTS:
        raise KeyError(key)
    default = DEFAULTS[key]
    # bool is an int subclass: compare exact types so True never lands in a cents field.
    if type(value) is not type(default):
        raise ValueError(f"{key} must be {type(default).__name__}, not {type(value).__name__}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"{key} cannot be negative")
    if key == "default_roles" and not set(value) <= set(PORTAL_ROLES):
        raise ValueError(f"unknown role in {value!r}")
    if key == "case_categories" and not all(isinstance(v, str) and v for v in value):
        raise ValueError("case categories must be non-empty texts")
    if key == "statement_day" and value > 28:
        raise ValueError("statement_day is a day of the month from 1 to 28, or 0 for off")
    if key == "reminder_schedule":
        check_schedule(value)
    if key == "time_zone":
        # zoneinfo directly, not portal.clock: the clock reads the settings.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None


def save_in_txn(changes: dict) -> dict:
    """Store changed settings inside the caller's transaction."""
    current = load()
    changed = {}
    for key, value in changes.items():
        check(key, value)
        if current.get(key) != value:
            changed[key] = (current.get(key), value)
            Setting.insert(key=key, value=json.dumps(value)).on_conflict(
                conflict_target=[Setting.key], update={Setting.value: json.dumps(value)}
            ).execute()
    if has_request_context():
        g.pop("portal_settings", None)
    return changed


def update(changes: dict) -> dict:
    """Apply a staff edit: new terms text gets a new version; each change is audited old -> new."""
    with write_txn():
        current = load()
        changes = dict(changes)
        if "login_terms" in changes and changes["login_terms"] != current["login_terms"]:
            # Everyone is asked again: sign-in compares this with the version a user accepted.
            changes["login_terms_version"] = current["login_terms_version"] + 1
        changed = save_in_txn(changes)
        for key, (old, new) in changed.items():
            audit.record("settings.changed", Setting(key=key), key=key, old=old, new=new)
        return changed
