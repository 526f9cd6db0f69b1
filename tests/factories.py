"""Small factory functions for test data (tests never depend on the demo seeds)."""

import itertools
from datetime import date, timedelta

from portal.models import Contact, Customer, Invoice, PortalUser, PortalUserSite, Site
from portal.security import hash_code, hash_secret, new_quick_pay_code, new_stamp, seal
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
        "quick_pay_hash": hash_code(code),
        "quick_pay_sealed": seal(code),
    }
    values.update(fields)
    return Invoice.create(**values), code


# --- quotes and orders ------------------------------------------------------------------


def product(**fields):
    from portal.models import Product

    n = next(_seq)
    values = {"item_code": f"ITEM-{n}", "description": f"Widget {n}", "price_cents": 1000}
    values.update(fields)
    return Product.create(**values)


def rfq(customer_, user=None, site=None, status="submitted", lines=None, **fields):
    """An RFQ with lines [(product or None, description, quantity_milli)]."""
    from portal.models import Rfq, RfqLine

    n = next(_seq)
    made = Rfq.create(
        number=f"RFQ-T{n}",
        customer=customer_,
        site=site,
        portal_user=user,
        status=status,
        **fields,
    )
    for position, (prod, description, milli) in enumerate(lines or [], start=1):
        RfqLine.create(
            rfq=made, position=position, product=prod, description=description, quantity_milli=milli
        )
    return made


def quote(customer_, status="published", site=None, rfq_=None, lines=None, **fields):
    """A quote with lines [(product or None, description, quantity_milli, unit_price_cents)];
    valid for 30 more days unless `valid_until` says otherwise."""
    from portal.db import utcnow
    from portal.models import Quote, QuoteLine

    n = next(_seq)
    values = {
        "number": f"Q-T{n}",
        "customer": customer_,
        "site": site,
        "rfq": rfq_,
        "status": status,
        "valid_until": date.today() + timedelta(days=30),
        "published_at": utcnow() if status != "draft" else None,
    }
    values.update(fields)
    made = Quote.create(**values)
    total = 0
    for position, (prod, description, milli, price) in enumerate(
        lines or [(None, "Custom part", 2000, 5000)], start=1
    ):
        amount = milli * price // 1000
        QuoteLine.create(
            quote=made,
            position=position,
            product=prod,
            description=description,
            quantity_milli=milli,
            unit_price_cents=price,
            amount_cents=amount,
        )
        total += amount
    Quote.update(total_cents=total).where(Quote.id == made.id).execute()
    made.total_cents = total
    return made


def order(customer_, site=None, status="open", lines=None, shipments=(), **fields):
    """A sales order with lines [(description, quantity_milli, shipped_milli, unit_price_cents)]
    and shipments [(carrier, tracking_number)]."""
    from portal.db import utcnow
    from portal.models import SalesOrder, SalesOrderLine, Shipment

    n = next(_seq)
    values = {
        "number": f"SO-T{n}",
        "customer": customer_,
        "site": site,
        "status": status,
        "order_date": date.today() - timedelta(days=3),
    }
    values.update(fields)
    made = SalesOrder.create(**values)
    total = 0
    for position, (description, milli, shipped, price) in enumerate(
        lines or [("Widget", 10000, 0, 1500)], start=1
    ):
        amount = milli * price // 1000
        SalesOrderLine.create(
            order=made,
            position=position,
            description=description,
            quantity_milli=milli,
            shipped_milli=shipped,
            unit_price_cents=price,
            amount_cents=amount,
        )
        total += amount
    SalesOrder.update(total_cents=total).where(SalesOrder.id == made.id).execute()
    made.total_cents = total
    for i, (carrier, tracking) in enumerate(shipments, start=1):
        Shipment.create(
            order=made,
            number=f"SH-T{n}-{i}",
            shipped_at=utcnow(),
            carrier=carrier,
            tracking_number=tracking,
        )
    return made


def payment(customer_, amount_cents=5_000, **fields):
    """A payment row as the payments core would leave it (applied, nothing applied yet)."""
    from portal.models import Payment

    n = next(_seq)
    values = {
        "receipt_number": f"R-T{n:05d}",
        "provider": "offline",
        "provider_reference": f"ref-{n}",
        "customer": customer_,
        "amount_cents": amount_cents,
        "currency": "USD",
    }
    values.update(fields)
    return Payment.create(**values)
