"""Requests for quote and quotes: customers ask, staff price and publish, customers decide.

RFQ statuses: `submitted` (waiting for the office), `quoted` (a quote was published for
it), `closed` (the office will not quote it), `withdrawn` (the customer took it back before
it was quoted). Quote statuses: `draft` (staff only, never
shown to customers), `published` (the customer may accept or decline until `valid_until`),
`accepted`, `declined`, `expired`. A published quote past its `valid_until` reads as expired
everywhere, whether or not a job has stored that yet, and can no longer be accepted.

Accepting is a signature (`QuoteSignature`): the customer types their full name, ticks that
they accept the quote's terms and may add a PO number; who, when, from which address and
the digest of the quote's lines and totals are kept. The digest is also stored when the
quote is published: a quote whose lines or totals changed since (or since the customer's
page was drawn) cannot be accepted as it was.

Files: a customer attaches drawings or photos to an RFQ, staff attach files to a quote while
it is a draft (so a published quote's files never change under the customer). Both are
attachments (`services/attachments.py`, owner kinds `rfq` and `quote`), served to a login
that may open the RFQ or the published quote, and to staff.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import date

from peewee import JOIN, fn
from peewee import Case as SqlCase

from .. import clock
from ..db import Slot, locked, prepared, utcnow, write_txn
from ..filters import datefmt, money
from ..models import (
    Contact,
    Customer,
    CustomerPrice,
    PortalUser,
    Product,
    Quote,
    QuoteLine,
    QuoteSignature,
    Rfq,
    RfqLine,
    SalesOrder,
    Site,
)
from ..web import absolute_url
from . import alerts, attachments, audit, counters, email_templates, notices, outbox, settings

RFQ_STATUSES = ("submitted", "quoted", "closed", "withdrawn")
RFQ_LABELS = {
    "submitted": "Submitted",
    "quoted": "Quoted",
    "closed": "Closed",
    "withdrawn": "Withdrawn",
}
QUOTE_STATUSES = ("draft", "published", "accepted", "declined", "expired")
# What a customer reads; the back office says "Published" where the customer reads this.
QUOTE_LABELS = {
    "draft": "Draft",
    "published": "Awaiting your decision",
    "accepted": "Accepted",
    "declined": "Declined",
    "expired": "Expired",
}
STAFF_QUOTE_LABELS = dict(QUOTE_LABELS, published="Published")
CUSTOMER_VISIBLE = ("published", "accepted", "declined", "expired")
# Owner kinds of attachments (services/attachments.py).
RFQ_FILES = "rfq"
QUOTE_FILES = "quote"


class QuoteError(Exception):
    """A decision or change that the quote's state does not allow (shown to the person)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Line:
    """A typed line before it is stored: product (or None), description, quantity, price."""

    product: Product | None
    description: str
    quantity_milli: int
    unit_price_cents: int = 0

    @property
    def amount_cents(self) -> int:
        # Thousandths of a unit times cents, rounded half up to the cent.
        return (self.quantity_milli * self.unit_price_cents + 500) // 1000


def today() -> date:
    """The business date (`portal.clock`), the day quotes expire on."""
    return clock.business_today()


def status_of(quote: Quote, on: date | None = None) -> str:
    """The quote's status as people read it: a published quote past valid_until is expired."""
    on = on or today()
    if quote.status == "published" and quote.valid_until is not None and quote.valid_until < on:
        return "expired"
    return quote.status


def _expired(on: date):
    return (Quote.status == "expired") | (
        (Quote.status == "published") & Quote.valid_until.is_null(False) & (Quote.valid_until < on)
    )


def _open(on: date):
    return (Quote.status == "published") & (Quote.valid_until.is_null() | (Quote.valid_until >= on))


def _where_status(query, status: str, on: date):
    if status == "expired":
        return query.where(_expired(on))
    if status == "published":
        return query.where(_open(on))
    if status in QUOTE_STATUSES:
        return query.where(Quote.status == status)
    return query


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- the customer's side ----------------------------------------------------------------


def quotes_for(user, status: str = "all"):
    """The quotes published to the user's company and sites, newest first (never drafts)."""
    query = (
        Quote.for_user(user, Quote, Rfq)
        .join(Rfq, JOIN.LEFT_OUTER)
        .where(Quote.status.in_(CUSTOMER_VISIBLE))
        .order_by(Quote.published_at.desc(nulls="LAST"), Quote.id.desc())
    )
    return _where_status(query, status, today())


def quote_for(user, quote_id) -> Quote | None:
    """One quote the user may see (a draft, another company's or site's answers None: 404)."""
    quote_id = _int(quote_id)
    if quote_id is None:
        return None
    return quotes_for(user).where(Quote.id == quote_id).first()


@prepared
def _waiting(sites):
    """How many published quotes of the scope are still open to answer."""
    query = Quote.scoped(sites, fn.COUNT(Quote.id)).where(Quote.status.in_(CUSTOMER_VISIBLE))
    return _where_status(query, "published", Slot("on", Quote.valid_until)).tuples()


def waiting_count(user) -> int:
    """How many quotes wait for the user's company to accept or decline (the dashboard's
    count, on every home page: a prepared query)."""
    sites, scope = Quote.scope_of(user)
    return _waiting.first(sites, on=today(), **scope)[0]


def rfqs_for(user):
    """The RFQs of the user's company and sites, newest first."""
    items = RfqLine.select(fn.COUNT(RfqLine.id)).where(RfqLine.rfq == Rfq.id).alias("item_count")
    return (
        Rfq.for_user(user, Rfq, PortalUser, Contact, Site, items)
        .join(PortalUser, JOIN.LEFT_OUTER)
        .join(Contact, JOIN.LEFT_OUTER)
        .switch(Rfq)
        .join(Site, JOIN.LEFT_OUTER)
        .order_by(Rfq.created_at.desc(), Rfq.id.desc())
    )


def rfq_for(user, rfq_id) -> Rfq | None:
    """One RFQ the user may see, or None (hence 404)."""
    rfq_id = _int(rfq_id)
    if rfq_id is None:
        return None
    return rfqs_for(user).where(Rfq.id == rfq_id).first()


def catalog():
    """Products a customer can ask about, by item code."""
    return Product.select().order_by(Product.item_code)


def sites_for(user):
    """The sites an RFQ of this user may be for (only their own when the login is limited)."""
    query = Site.select().where(Site.customer == user.contact.customer_id)
    if user.site_ids is not None:
        query = query.where(Site.id.in_(user.site_ids))
    return query.order_by(Site.name)


def create_rfq(
    user, lines: list[Line], needed_by=None, notes: str = "", site_id=None, files=()
) -> Rfq:
    """Store an RFQ with its lines and files (checked: `attachments.prepare`) in one
    transaction; the site must be one the user sees."""
    if not lines:
        raise QuoteError("Add at least one item.", "lines")
    site = None
    if site_id:
        site = sites_for(user).where(Site.id == site_id).first()
        if site is None:
            raise QuoteError("Choose one of your sites.", "site_id")
    elif user.site_ids is not None:
        raise QuoteError("Choose the site this is for.", "site_id")
    attachments.store(files)
    with write_txn():
        now = utcnow()
        rfq = Rfq.create(
            number=counters.next_number("rfq", "RFQ"),
            customer=user.contact.customer_id,
            site=site,
            portal_user=user,
            status="submitted",
            needed_by=needed_by,
            notes=(notes or "").strip(),
            created_at=now,
            updated_at=now,
        )
        for position, line in enumerate(lines, start=1):
            RfqLine.create(
                rfq=rfq,
                position=position,
                product=line.product,
                description=line.description,
                quantity_milli=line.quantity_milli,
            )
        attachments.record(RFQ_FILES, rfq.id, files, portal_user=user)
        audit.record("rfq.submitted", rfq, lines=len(lines), attachments=len(files))
        alerts.raise_("rfq_submitted", rfq)
        alerts.acknowledge(rfq)
    return rfq


@attachments.visible_to(RFQ_FILES)
def _customer_sees_rfq(user, rfq_id) -> bool:
    """A customer sees an RFQ's files when they may open the RFQ (quotes role, its site)."""
    if not (settings.get("module_quotes") and user.has_role("quotes")):
        return False
    return rfq_for(user, rfq_id) is not None


@attachments.visible_to(QUOTE_FILES)
def _customer_sees_quote(user, quote_id) -> bool:
    """A customer sees a quote's files when they may open the quote (never a draft)."""
    if not (settings.get("module_quotes") and user.has_role("quotes")):
        return False
    return quote_for(user, quote_id) is not None


def rfq_files(rfq: Rfq) -> list:
    """The files the customer sent with an RFQ, in order."""
    return attachments.for_owners(RFQ_FILES, [rfq.id]).get(rfq.id, [])


def quote_files(quote: Quote) -> list:
    """The files staff attached to a quote, in order."""
    return attachments.for_owners(QUOTE_FILES, [quote.id]).get(quote.id, [])


def rfq_lines(rfq: Rfq) -> list[RfqLine]:
    """An RFQ's lines in order, with their products."""
    return RfqLine.of(rfq)


def quote_lines(quote: Quote) -> list[QuoteLine]:
    """A quote's lines in order, with their products."""
    return QuoteLine.of(quote)


def visible_quotes_of(rfq: Rfq) -> list[Quote]:
    """The quotes a customer may see for one of their RFQs."""
    return list(rfq.quotes.where(Quote.status.in_(CUSTOMER_VISIBLE)).order_by(Quote.id.desc()))


def digest(quote: Quote, lines=None) -> str:
    """SHA-256 of what the customer agrees to: the quote's number, currency, validity and
    total, and each line's item, description, quantity, price and amount, in order."""
    lines = quote_lines(quote) if lines is None else lines
    document = {
        "number": quote.number,
        "currency": quote.currency,
        "valid_until": quote.valid_until.isoformat() if quote.valid_until else None,
        "total_cents": quote.total_cents,
        "lines": [
            [
                line.product.item_code if line.product_id else None,
                line.description,
                line.quantity_milli,
                line.unit_price_cents,
                line.amount_cents,
            ]
            for line in lines
        ],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def signature_of(quote: Quote) -> QuoteSignature | None:
    return QuoteSignature.get_or_none(QuoteSignature.quote == quote.id)


def orders_of(quote: Quote) -> list[SalesOrder]:
    """The orders made from a quote (the ERP's order import names the quote)."""
    return list(quote.orders.order_by(SalesOrder.id))


@dataclass(frozen=True)
class Signing:
    """What the customer typed and ticked to accept, and where the request came from."""

    full_name: str
    terms: bool
    customer_po: str = ""
    seen_digest: str = ""
    ip: str = ""
    user_agent: str = ""


def _decide(
    quote: Quote, user, status: str, reason: str = "", customer_po: str = "", signing=None
) -> None:
    """Record a decision only if the quote is still open: the UPDATE re-checks the state, so a
    double click or a colleague's decision a second earlier cannot decide it twice. An
    acceptance (`signing`) is checked against the quote's digest under the quote's row lock
    and kept as a `QuoteSignature` in the same transaction."""
    on = today()
    with write_txn():
        now = utcnow()
        if signing is not None:
            current = locked(Quote.select().where(Quote.id == quote.id)).get()
            signed_digest = digest(current)
            if current.published_digest and current.published_digest != signed_digest:
                raise QuoteError(
                    "This quote changed after we sent it, so it cannot be accepted as it was. "
                    "Ask us to send it again."
                )
            if signing.seen_digest != signed_digest:
                raise QuoteError(
                    "This quote changed while you were reading it. Check it again, then accept."
                )
        changed = (
            Quote.update(
                status=status,
                decided_at=now,
                decided_by=user,
                decline_reason=reason,
                customer_po=customer_po,
            )
            .where((Quote.id == quote.id) & _open(on))
            .execute()
        )
        if changed != 1:
            current = Quote.get_by_id(quote.id)
            state = status_of(current, on)
            if state == "expired":
                raise QuoteError("This quote has expired. Ask us for a new one.")
            raise QuoteError(f"This quote was already {QUOTE_LABELS[state].lower()}.")
        if signing is not None:
            QuoteSignature.create(
                quote=quote.id,
                portal_user=user.id,
                full_name=signing.full_name,
                email=user.email,
                customer_po=customer_po,
                terms_accepted=True,
                digest=signed_digest,
                total_cents=current.total_cents,
                currency=current.currency,
                signed_at=now,
                ip=signing.ip[:64],
                user_agent=signing.user_agent[:255],
            )
        audit.record(
            f"quote.{status}",
            quote,
            reason=reason or None,
            po=customer_po or None,
            signed_as=signing.full_name if signing else None,
            digest=signed_digest if signing else None,
        )
        _email_office(quote, user, status, reason, customer_po)
        alerts.raise_("quote_decided", quote, office_copy=True)
    quote.status, quote.decided_at, quote.decided_by = status, now, user
    quote.decline_reason, quote.customer_po = reason, customer_po


def accept(quote: Quote, user, signing: Signing) -> None:
    """The customer signs a published quote that is still valid and unchanged: full name
    typed, terms ticked, PO number if they have one."""
    full_name = " ".join((signing.full_name or "").split())
    if len(full_name) < 2:
        raise QuoteError("Type your full name to sign.", "full_name")
    if not signing.terms:
        raise QuoteError("Tick that you accept the quote's terms.", "terms")
    customer_po = " ".join((signing.customer_po or "").split())
    signing = Signing(
        full_name, True, customer_po, signing.seen_digest, signing.ip, signing.user_agent
    )
    _decide(quote, user, "accepted", customer_po=customer_po, signing=signing)


def decline(quote: Quote, user, reason: str) -> None:
    """The customer declines a published quote, saying why."""
    reason = (reason or "").strip()
    if not reason:
        raise QuoteError("Tell us briefly why.", "reason")
    _decide(quote, user, "declined", reason)


def _email_office(quote: Quote, user, status: str, reason: str, customer_po: str = "") -> None:
    """Tell the office (settings contact_email) about a customer's decision."""
    to = settings.get("contact_email")
    if not to:
        return
    customer = Customer.get_by_id(quote.customer_id)
    verb = "accepted" if status == "accepted" else "declined"
    lines = [
        f"{user.display_name} <{user.email}> of {customer.name} ({customer.account_number}) "
        f"{verb} quote {quote.number} for {money(quote.total_cents, quote.currency)}.",
    ]
    if customer_po:
        lines += ["", f"Their PO number: {customer_po}"]
    if reason:
        lines += ["", f"Reason: {reason}"]
    lines += [
        "",
        f"Open it in the back office: {absolute_url('staff_quotes.show', quote_id=quote.id)}",
    ]
    outbox.queue(
        to,
        f"Quote {quote.number} {verb} by {customer.name}",
        "\n".join(lines) + "\n",
        kind=f"quote_{verb}",
    )


# --- the back office --------------------------------------------------------------------


def staff_rfqs(status: str = "submitted", q: str = ""):
    """RFQs for the office: submitted ones first, oldest first (they have waited longest),
    then the rest newest first."""
    waiting = SqlCase(None, [(Rfq.status == "submitted", 0)], 1)
    oldest_waiting = SqlCase(None, [(Rfq.status == "submitted", Rfq.created_at)], None)
    query = (
        Rfq.select(Rfq, Customer)
        .join(Customer)
        .order_by(waiting, oldest_waiting.asc(), Rfq.created_at.desc(), Rfq.id.desc())
    )
    if status in RFQ_STATUSES:
        query = query.where(Rfq.status == status)
    q = (q or "").strip()
    if q:
        like = f"%{q}%"
        query = query.where(Rfq.number.ilike(like) | Customer.name.ilike(like))
    return query


def staff_quotes(status: str = "all", q: str = ""):
    """Quotes for the office, newest first, by status and search."""
    query = (
        Quote.select(Quote, Customer)
        .join(Customer)
        .order_by(Quote.created_at.desc(), Quote.id.desc())
    )
    query = _where_status(query, status, today())
    q = (q or "").strip()
    if q:
        like = f"%{q}%"
        query = query.where(Quote.number.ilike(like) | Customer.name.ilike(like))
    return query


def price_for(customer_id: int, product: Product | None) -> int:
    """The customer's own price for a product, else the catalog price (0 without a product)."""
    if product is None:
        return 0
    special = CustomerPrice.get_or_none(
        (CustomerPrice.customer == customer_id) & (CustomerPrice.product == product.id)
    )
    return special.price_cents if special is not None else product.price_cents


def product_by_code(code: str) -> Product | None:
    """A catalog product by item code (case-insensitive), or None."""
    code = (code or "").strip()
    if not code:
        return None
    return Product.get_or_none(Product.item_code == code) or Product.get_or_none(
        Product.item_code == code.upper()
    )


def proposed_lines(rfq: Rfq) -> list[Line]:
    """An RFQ's lines priced for its customer: the starting point of a quote."""
    return [
        Line(
            line.product,
            line.description,
            line.quantity_milli,
            price_for(rfq.customer_id, line.product),
        )
        for line in rfq_lines(rfq)
    ]


def _store_lines(quote: Quote, lines: list[Line]) -> int:
    QuoteLine.delete().where(QuoteLine.quote == quote).execute()
    total = 0
    for position, line in enumerate(lines, start=1):
        QuoteLine.create(
            quote=quote,
            position=position,
            product=line.product,
            description=line.description,
            quantity_milli=line.quantity_milli,
            unit_price_cents=line.unit_price_cents,
            amount_cents=line.amount_cents,
        )
        total += line.amount_cents
    return total


def create_quote(
    rfq: Rfq | None,
    staff,
    lines: list[Line],
    valid_until: date,
    notes: str = "",
    *,
    customer: Customer | None = None,
    site_id: int | None = None,
    files=(),
) -> Quote:
    """A draft quote with its priced lines and files, in one transaction: answering an RFQ
    (for its customer and site), or started by the office for `customer` (and `site_id`)."""
    if not lines:
        raise QuoteError("Add at least one line.", "lines")
    if rfq is not None:
        customer_id, site_id = rfq.customer_id, rfq.site_id
    else:
        customer_id = customer.id
        if site_id and not Site.belongs_to(site_id, customer_id):
            raise QuoteError("Choose one of this customer's sites.", "site_id")
    attachments.store(files)
    with write_txn():
        quote = Quote.create(
            number=counters.next_number("quote", "Q"),
            customer=customer_id,
            site=site_id,
            rfq=rfq,
            status="draft",
            valid_until=valid_until,
            notes=(notes or "").strip(),
            created_at=utcnow(),
        )
        total = _store_lines(quote, lines)
        Quote.update(total_cents=total).where(Quote.id == quote.id).execute()
        quote.total_cents = total
        attachments.record(QUOTE_FILES, quote.id, files, staff_user=staff)
        audit.record(
            "quote.created",
            quote,
            actor=staff,
            rfq=rfq.number if rfq else None,
            total_cents=total,
            attachments=len(files),
        )
    return quote


def update_draft(
    quote: Quote, staff, lines: list[Line], valid_until: date, notes: str = "", files=()
) -> None:
    """Change a draft's lines, validity and notes, and add files; a published quote is never
    changed (its row is locked, so a publish at the same moment comes first or after)."""
    if not lines:
        raise QuoteError("Add at least one line.", "lines")
    attachments.store(files)
    with write_txn():
        if locked(Quote.select().where(Quote.id == quote.id)).get().status != "draft":
            raise QuoteError("Only a draft can be changed; this quote was already published.")
        attachments.record(QUOTE_FILES, quote.id, files, staff_user=staff)
        total = _store_lines(quote, lines)
        Quote.update(total_cents=total, valid_until=valid_until, notes=(notes or "").strip()).where(
            Quote.id == quote.id
        ).execute()
        audit.record(
            "quote.updated", quote, actor=staff, total_cents=total, attachments=len(files) or None
        )
    quote.total_cents, quote.valid_until, quote.notes = total, valid_until, (notes or "").strip()


def publish(quote: Quote, staff) -> None:
    """Show a draft to the customer: email the requester, mark the RFQ quoted."""
    on = today()
    if quote.valid_until is not None and quote.valid_until < on:
        raise QuoteError("The quote's valid-until date has passed; edit it before publishing.")
    if not quote.lines.exists():
        raise QuoteError("A quote needs at least one line.")
    with write_txn():
        now = utcnow()
        if quote.rfq_id:
            rfq = locked(Rfq.select().where(Rfq.id == quote.rfq_id)).get()
            if rfq.status == "withdrawn":
                raise QuoteError(f"The customer withdrew request {rfq.number}.")
        changed = (
            Quote.update(
                status="published",
                published_at=now,
                published_digest=digest(Quote.get_by_id(quote.id)),
            )
            .where((Quote.id == quote.id) & (Quote.status == "draft"))
            .execute()
        )
        if changed != 1:
            raise QuoteError("This quote was already published.")
        if quote.rfq_id:
            Rfq.update(status="quoted", updated_at=now).where(Rfq.id == quote.rfq_id).execute()
        audit.record("quote.published", quote, actor=staff, total_cents=quote.total_cents)
        _email_customer(quote)
    quote.status, quote.published_at = "published", now


def _email_customer(quote: Quote) -> None:
    """The quote_published email to whoever asked for it, or to the company's address,
    unless that contact turned quote emails off (`notices`)."""
    user = None
    if quote.rfq_id:
        rfq = Rfq.get_by_id(quote.rfq_id)
        if rfq.portal_user_id:
            user = PortalUser.get_or_none(PortalUser.id == rfq.portal_user_id)
            if user is not None and user.status != "active":
                user = None
    customer = Customer.get_by_id(quote.customer_id)
    mail = notice_mail(user, customer, "quote_published")
    if mail is None:
        return
    to, name, headers = mail
    email_templates.queue(
        "quote_published",
        to,
        headers=headers,
        name=name,
        quote_number=quote.number,
        total=money(quote.total_cents, quote.currency),
        valid_until=datefmt(quote.valid_until) if quote.valid_until else "further notice",
        link=absolute_url("quotes.show", quote_id=quote.id),
    )


def notice_mail(user, customer: Customer, topic: str) -> tuple[str, str, dict | None] | None:
    """(address, greeting name, extra headers) of a customer notice of `topic` (a quote
    published, an order shipped) to `user`'s contact, else to the company's address; None
    when nobody is to get it. A contact that turned the topic off gets nothing (never the
    company's address instead); every message to a contact carries its one-click
    unsubscribe. The company's address gets the contact's choice when it is a contact's."""
    if user is not None:
        contact = user.contact
        if not notices.wants(contact, topic):
            return None
        return contact.email, contact.first_name, notices.headers(contact, topic)
    if not customer.email:
        return None
    contact = (
        Contact.select()
        .where(
            (Contact.customer == customer.id)
            & (fn.LOWER(Contact.email) == customer.email.strip().lower())
        )
        .order_by(Contact.id)
        .first()
    )
    if contact is None:
        return customer.email, customer.name, None
    if not notices.wants(contact, topic):
        return None
    return customer.email, customer.name, notices.headers(contact, topic)


def withdraw_rfq(rfq: Rfq, user) -> None:
    """The customer takes back a request the office has not quoted yet; the UPDATE re-checks
    the state, so a quote published a moment earlier wins."""
    with write_txn():
        changed = (
            Rfq.update(status="withdrawn", updated_at=utcnow())
            .where((Rfq.id == rfq.id) & (Rfq.status == "submitted"))
            .execute()
        )
        if changed != 1:
            state = RFQ_LABELS.get(Rfq.get_by_id(rfq.id).status, "answered").lower()
            raise QuoteError(f"This request is already {state}; it can no longer be withdrawn.")
        audit.record("rfq.withdrawn", rfq, actor=user)
    rfq.status = "withdrawn"


def close_rfq(rfq: Rfq, staff, reason: str = "") -> None:
    """The office will not quote this RFQ."""
    with write_txn():
        Rfq.update(status="closed", updated_at=utcnow()).where(Rfq.id == rfq.id).execute()
        audit.record("rfq.closed", rfq, actor=staff, reason=(reason or "").strip() or None)
    rfq.status = "closed"
