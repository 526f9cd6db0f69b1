"""Portal settings: typed defaults, stored overrides, read once per request."""

import json

from flask import g, has_request_context

from ..db import write_txn
from ..models import Setting

DEFAULTS = {
    "portal_name": "Doorstep",
    "company_name": "Northwind Services",
    "contact_email": "billing@example.com",
    "contact_phone": "",
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
}


def load() -> dict:
    """All settings, defaults overlaid with stored values; cached for the current request."""
    if has_request_context() and "portal_settings" in g:
        return g.portal_settings
    values = dict(DEFAULTS)
    for row in Setting.select():
        if row.key in DEFAULTS:
            values[row.key] = json.loads(row.value)
    if has_request_context():
        g.portal_settings = values
    return values


def get(key: str):
    """One setting's value."""
    return load()[key]


def save(changes: dict) -> dict:
    """Store changed settings in their own transaction; returns {key: (old, new)} of real changes."""
    with write_txn():
        return save_in_txn(changes)


def save_in_txn(changes: dict) -> dict:
    """Store changed settings inside the caller's transaction."""
    current = load()
    changed = {}
    for key, value in changes.items():
        if key not in DEFAULTS:
            raise KeyError(key)
        if current.get(key) != value:
            changed[key] = (current.get(key), value)
            Setting.insert(key=key, value=json.dumps(value)).on_conflict(
                conflict_target=[Setting.key], update={Setting.value: json.dumps(value)}
            ).execute()
    if has_request_context():
        g.pop("portal_settings", None)
    return changed
