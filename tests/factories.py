"""Small factory functions for test data (tests never depend on the demo seeds)."""

import itertools
from datetime import date, timedelta

from portal.models import Contact, Customer, Invoice, PortalUser, PortalUserSite, Site
from portal.security import hash_secret, new_quick_pay_code, new_stamp, seal
from portal.services import auth as auth_service

PASSWORD = "correct horse battery"
ALL_ROLES = "invoices,statements,quotes,orders,cases,company_admin"
_seq = itertools.count(1)


def customer(**fields) -> Customer:
    n = next(_seq)
    values = {
        "account_number": f"C{n:05d}",
        "name": f"Customer {n} Ltd",
        "email": f"ap{n}@example.com",
    }
    values.update(fields)
    return Customer.create(**values)


def site(customer_, **fields) -> Site:
    n = next(_seq)
    values = {"customer": customer_, "site_code": f"S{n}", "name": f"Site {n}"}
    values.update(fields)
    return Site.create(**values)


def portal_user(
    customer_=None,
    email=None,
    roles=ALL_ROLES,
    sites=None,
    status="active",
    password=PASSWORD,
    **contact_fields,
) -> PortalUser:
    customer_ = customer_ or customer()
    n = next(_seq)
    contact = Contact.create(
        customer=customer_,
        email=(email or f"user{n}@example.com").lower(),
        first_name=contact_fields.pop("first_name", "Pat"),
        last_name=contact_fields.pop("last_name", f"Buyer{n}"),
        **contact_fields,
    )
    user = PortalUser.create(
        contact=contact,
        roles=roles,
        status=status,
        all_sites=sites is None,
        password_hash=hash_secret(password) if password else None,
        auth_stamp=new_stamp(),
    )
    for s in sites or []:
        PortalUserSite.create(user=user, site=s)
    return user


def staff(email=None, admin=False, password=PASSWORD):
    n = next(_seq)
    return auth_service.create_staff(
        email or f"staff{n}@example.com", password, name=f"Staff {n}", admin=admin
    )


def invoice(
    customer_=None,
    code=None,
    total_cents=100_000,
    paid_cents=0,
    issue_date=None,
    due_days=30,
    **fields,
) -> tuple[Invoice, str]:
    """An invoice and its plaintext quick-pay code."""
    customer_ = customer_ or customer()
    n = next(_seq)
    code = code or new_quick_pay_code()
    issue = issue_date or date.today() - timedelta(days=5)
    values = {
        "number": f"INV-{n:06d}",
        "customer": customer_,
        "issue_date": issue,
        "due_date": issue + timedelta(days=due_days),
        "total_cents": total_cents,
        "amount_paid_cents": paid_cents,
        "quick_pay_hash": hash_secret(code),
        "quick_pay_sealed": seal(code),
    }
    values.update(fields)
    return Invoice.create(**values), code
