"""Demo data: `flask --app portal seed` loads `portal/seeds/*.csv` through the importer, then
adds here what CSV does not cover. Running it again changes nothing (on the same day).

Demo logins (password `doorstep-demo` for all):

| login | who |
|---|---|
| ap@acme.example | Acme Manufacturing (ACME01), company admin, every role, every site |
| plant2@acme.example | Acme Manufacturing, invoices + orders + cases, site Plant 2 only |
| office@birchwood.example | Birchwood Dental (BIRCH01), every role |
| admin@example.com | back office (/staff/login), admin |
| agent@example.com | back office (/staff/login), agent |

Quick-pay example (no sign-in, "Pay an invoice"): invoice `INV-10042`, code `DEMO-PAY-2026`
(Acme Manufacturing, open, $1,240.00, 2 % off when paid within 10 days of issue — still in
the window whenever the demo is seeded).

Dates in `portal/seeds/invoices.csv` are written `today`, `today-45` or `today+27` and become
real dates when the seed runs, so the demo always has open, overdue (1-30, 31-60, 61-90 and
over 90 days), partly paid, paid and voided invoices, and discounts still in their window.
"""

import io
import re
from datetime import date, timedelta
from pathlib import Path

from ..db import utcnow, write_txn
from ..models import (
    Case,
    CaseMessage,
    Contact,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentApplication,
    PortalUser,
    PortalUserSite,
    Product,
    Quote,
    QuoteLine,
    Rfq,
    RfqLine,
    SalesOrder,
    SalesOrderLine,
    Shipment,
    Site,
    StaffUser,
)
from ..security import hash_secret, new_stamp
from . import counters, importer, settings

# Shipped inside the package, so `flask seed` works from an installed wheel too.
SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds"
PASSWORD = "doorstep-demo"
QUICK_PAY_INVOICE = "INV-10042"
QUICK_PAY_CODE = "DEMO-PAY-2026"
# In the order the importer needs them: references first.
CSV_KINDS = ("customers", "sites", "contacts", "products", "prices", "invoices")
ALL_ROLES = "invoices,statements,quotes,orders,cases,company_admin"

PORTAL_USERS = [
    # email, roles, site codes (None = every site)
    ("ap@acme.example", ALL_ROLES, None),
    ("plant2@acme.example", "invoices,orders,cases", ["P2"]),
    ("office@birchwood.example", ALL_ROLES, None),
]
STAFF_USERS = [
    ("admin@example.com", "Ada Admin", "admin"),
    ("agent@example.com", "Alan Agent", "agent"),
]
SETTINGS = {
    "bulletin_message": (
        "Our warehouse closes early on Friday for stock-taking. Orders placed after 12:00 "
        "ship on Monday."
    ),
    "login_message": "Welcome to the Northwind Services customer portal.",
}

# Invoice lines: (item code, description, quantity, unit price in cents); invoices not listed
# get two lines (materials and labour) that add up to their total.
INVOICE_LINES = {
    "INV-10042": [
        ("BRKT-200", "Steel mounting bracket 200 mm", 60, 1290),
        ("BOLT-M10", "Hex bolt M10 x 40 (box of 100)", 20, 1950),
        ("", "Delivery to Plant 1", 1, 7600),
    ],
}

# (provider, reference, invoice, amount cents, discount cents, days ago)
PAYMENTS = [
    ("test-checkout", "demo-acme-10033", "INV-10033", 245000, 5000, 33),
    ("offline", "demo-acme-10029", "INV-10029", 198000, 0, 31),
    ("test-checkout", "demo-acme-10036", "INV-10036", 200000, 0, 18),
    ("test-checkout", "demo-birch-10038", "INV-10038", 61500, 0, 6),
    ("offline", "demo-birch-10047", "INV-10047", 48000, 0, 10),
    ("offline", "demo-copper-10046", "INV-10046", 312000, 0, 21),
]
VOID_INVOICES = ("INV-10021",)

_RELATIVE = re.compile(r"^today(?:([+-])(\d{1,4}))?$")


class SeedError(RuntimeError):
    """A seed file did not import; the message lists its bad rows."""


def relative_csv(text: str, today: date) -> str:
    """Replace cells written `today`, `today-45`, `today+27` with YYYY-MM-DD dates."""

    def cell(value: str) -> str:
        match = _RELATIVE.match(value)
        if not match:
            return value
        sign, days = match.groups()
        delta = timedelta(days=int(days or 0))
        return (today - delta if sign == "-" else today + delta).isoformat()

    # The seed files never quote a date, so a plain split keeps every other cell intact.
    return "\n".join(",".join(cell(c) for c in line.split(",")) for line in text.splitlines())


def load_demo(today: date | None = None, seeds_dir: Path = SEEDS_DIR) -> dict:
    """Load the demo data; returns {kind: (created, updated)}. Idempotent."""
    today = today or date.today()
    counts = {}
    numbers = []
    for kind in CSV_KINDS:
        text = (seeds_dir / f"{kind}.csv").read_text(encoding="utf-8")
        if kind == "invoices":
            numbers = [line.split(",", 1)[0] for line in text.splitlines()[1:] if line.strip()]
        result = importer.import_csv(kind, io.StringIO(relative_csv(text, today)))
        if result.errors:
            raise SeedError(f"portal/seeds/{kind}.csv: " + "; ".join(result.errors))
        counts[kind] = (result.created, result.updated)
    with write_txn():
        counts["portal users"] = (_portal_users(), 0)
        counts["staff users"] = (_staff_users(), 0)
        counts["invoice lines"] = (_invoice_lines(numbers), 0)
        counts["voided invoices"] = (0, _void_invoices())
        counts["payments"] = (_payments(), 0)
        counts["rfqs and quotes"] = (_rfqs_and_quotes(today), 0)
        counts["orders"] = (_orders(today), 0)
        counts["cases"] = (_cases(today), 0)
        counts["settings"] = (0, _settings())
    return counts


# --- people -------------------------------------------------------------------------------


def _portal_users() -> int:
    created = 0
    now = utcnow()
    for email, roles, site_codes in PORTAL_USERS:
        contact = Contact.get(Contact.email == email)
        if PortalUser.get_or_none(PortalUser.contact == contact) is not None:
            continue  # keep whatever the demo user changed (password, roles)
        user = PortalUser.create(
            contact=contact,
            password_hash=hash_secret(PASSWORD),
            status="active",
            roles=roles,
            all_sites=site_codes is None,
            auth_stamp=new_stamp(),
            activated_at=now,
        )
        for code in site_codes or []:
            site = Site.get((Site.customer == contact.customer_id) & (Site.site_code == code))
            PortalUserSite.create(user=user, site=site)
        created += 1
    return created


def _staff_users() -> int:
    created = 0
    for email, name, role in STAFF_USERS:
        if StaffUser.get_or_none(StaffUser.email == email) is None:
            StaffUser.create(
                email=email,
                name=name,
                role=role,
                password_hash=hash_secret(PASSWORD),
                auth_stamp=new_stamp(),
            )
            created += 1
    return created


def _user(email: str) -> PortalUser:
    return PortalUser.select().join(Contact).where(Contact.email == email).get()


def _staff(email: str) -> StaffUser:
    return StaffUser.get(StaffUser.email == email)


# --- billing ------------------------------------------------------------------------------


def _invoice_lines(numbers: list[str]) -> int:
    created = 0
    invoices = Invoice.select().where(Invoice.number.in_(numbers)).order_by(Invoice.number)
    for invoice in invoices:
        if InvoiceLine.select().where(InvoiceLine.invoice == invoice).exists():
            continue
        lines = INVOICE_LINES.get(invoice.number)
        if lines is None:
            materials = invoice.total_cents * 7 // 10
            lines = [
                ("", f"{invoice.description} — parts and materials", 1, materials),
                ("", "Labour", 1, invoice.total_cents - materials),
            ]
        for position, (item, description, quantity, price) in enumerate(lines, start=1):
            InvoiceLine.create(
                invoice=invoice,
                position=position,
                item_code=item,
                description=description,
                quantity_milli=quantity * 1000,
                unit_price_cents=price,
                amount_cents=quantity * price,
            )
            created += 1
    return created


def _void_invoices() -> int:
    return (
        Invoice.update(status="void", voided_at=utcnow())
        .where(Invoice.number.in_(VOID_INVOICES) & (Invoice.status != "void"))
        .execute()
    )


def _payments() -> int:
    created = 0
    now = utcnow()
    for provider, reference, number, amount, discount, days_ago in PAYMENTS:
        exists = Payment.get_or_none(
            (Payment.provider == provider) & (Payment.provider_reference == reference)
        )
        if exists is not None:
            continue
        invoice = Invoice.get(Invoice.number == number)
        contact = Contact.select().where(Contact.customer == invoice.customer_id).first()
        when = now - timedelta(days=days_ago)
        payment = Payment.create(
            receipt_number=counters.next_number("receipt", "R"),
            provider=provider,
            provider_reference=reference,
            customer=invoice.customer_id,
            amount_cents=amount,
            currency=invoice.currency,
            unapplied_cents=0,
            status="applied",
            payer_name=contact.full_name if contact else "",
            payer_email=(contact.email or "") if contact else "",
            received_at=when,
            posted_at=when,
        )
        PaymentApplication.create(
            payment=payment,
            invoice=invoice,
            amount_cents=amount,
            discount_cents=discount,
            created_at=when,
        )
        # The ERP file already counts the cash (amount_paid); the discount is the portal's.
        paid = max(invoice.amount_paid_cents, amount)
        if discount and not invoice.discount_taken_cents:
            paid = min(paid, invoice.total_cents - discount)
        Invoice.update(
            amount_paid_cents=paid,
            discount_taken_cents=discount or invoice.discount_taken_cents,
        ).where(Invoice.id == invoice.id).execute()
        created += 1
    return created


# --- sales --------------------------------------------------------------------------------


def _products() -> dict[str, Product]:
    return {p.item_code: p for p in Product.select()}


def _customer(account: str) -> Customer:
    return Customer.get(Customer.account_number == account)


def _site(customer: Customer, code: str) -> Site:
    return Site.get((Site.customer == customer) & (Site.site_code == code))


def _rfq(customer, site, user, status, needed_by, notes, lines, products, created) -> Rfq:
    rfq = Rfq.create(
        number=counters.next_number("rfq", "RFQ"),
        customer=customer,
        site=site,
        portal_user=user,
        status=status,
        needed_by=needed_by,
        notes=notes,
        created_at=created,
        updated_at=created,
    )
    for position, (item, description, quantity) in enumerate(lines, start=1):
        RfqLine.create(
            rfq=rfq,
            position=position,
            product=products.get(item),
            description=description,
            quantity_milli=quantity * 1000,
        )
    return rfq


def _quote(customer, site, rfq, status, valid_until, lines, products, created, **fields) -> Quote:
    quote = Quote.create(
        number=counters.next_number("quote", "Q"),
        customer=customer,
        site=site,
        rfq=rfq,
        status=status,
        valid_until=valid_until,
        created_at=created,
        published_at=created if status != "draft" else None,
        **fields,
    )
    total = 0
    for position, (item, description, quantity, price) in enumerate(lines, start=1):
        QuoteLine.create(
            quote=quote,
            position=position,
            product=products.get(item),
            description=description,
            quantity_milli=quantity * 1000,
            unit_price_cents=price,
            amount_cents=quantity * price,
        )
        total += quantity * price
    Quote.update(total_cents=total).where(Quote.id == quote.id).execute()
    quote.total_cents = total
    return quote


def _rfqs_and_quotes(today: date) -> int:
    """Per customer, only when it has no RFQ or quote yet (numbers come from the counters)."""
    products = _products()
    now = utcnow()
    created = 0
    acme, birch, copper = _customer("ACME01"), _customer("BIRCH01"), _customer("COPPER1")
    if not Rfq.select().where(Rfq.customer == acme).exists():
        ap, plant1, plant2 = _user("ap@acme.example"), _site(acme, "P1"), _site(acme, "P2")
        _rfq(
            acme,
            plant2,
            ap,
            "submitted",
            today + timedelta(days=30),
            "Please quote delivery to Plant 2, loading dock B.",
            [("PUMP-3K", "Centrifugal pump 3 kW", 2), ("GSKT-55", "Nitrile gasket 55 mm", 200)],
            products,
            now - timedelta(days=2),
        )
        quoted = _rfq(
            acme,
            plant1,
            ap,
            "quoted",
            today + timedelta(days=21),
            "Brackets for the new press line.",
            [("BRKT-200", "Steel mounting bracket 200 mm", 400)],
            products,
            now - timedelta(days=9),
        )
        _quote(
            acme,
            plant1,
            quoted,
            "published",
            today + timedelta(days=20),
            [
                ("BRKT-200", "Steel mounting bracket 200 mm", 400, 1250),
                ("SRV-HR", "On-site fitting (technician hours)", 6, 9500),
            ],
            products,
            now - timedelta(days=7),
            notes="Price includes delivery to Plant 1. Lead time 2 weeks.",
        )
        accepted = _quote(
            acme,
            plant2,
            None,
            "accepted",
            today - timedelta(days=10),
            [
                ("PAL-WRAP", "Stretch wrap 500 mm (roll)", 40, 1790),
                ("BOLT-M10", "Hex bolt M10 x 40 (box of 100)", 30, 1950),
            ],
            products,
            now - timedelta(days=30),
            decided_at=now - timedelta(days=26),
            decided_by=ap,
        )
        _acme_orders_from(accepted, today)
        created += 4
    if not Rfq.select().where(Rfq.customer == birch).exists():
        office = _user("office@birchwood.example")
        rfq = _rfq(
            birch,
            _site(birch, "MAIN"),
            office,
            "quoted",
            today + timedelta(days=14),
            "Annual service for two compressors.",
            [("SRV-HR", "Compressor service", 8)],
            products,
            now - timedelta(days=5),
        )
        _quote(
            birch,
            _site(birch, "MAIN"),
            rfq,
            "published",
            today + timedelta(days=25),
            [("SRV-HR", "Compressor service (technician hours)", 8, 9500)],
            products,
            now - timedelta(days=3),
        )
        created += 2
    if not Rfq.select().where(Rfq.customer == copper).exists():
        rfq = _rfq(
            copper,
            _site(copper, "DEPOT"),
            None,
            "submitted",
            None,
            "Pallet wrap for Q3, monthly deliveries.",
            [("PAL-WRAP", "Stretch wrap 500 mm (roll)", 120)],
            products,
            now - timedelta(days=1),
        )
        _quote(
            copper,
            _site(copper, "HQ"),
            None,
            "declined",
            today - timedelta(days=5),
            [("PUMP-3K", "Centrifugal pump 3 kW", 1, 1890_00)],
            products,
            now - timedelta(days=40),
            decided_at=now - timedelta(days=35),
            decline_reason="Went with a refurbished unit.",
        )
        created += 2
    return created


def _acme_orders_from(quote: Quote, today: date) -> None:
    """The order the accepted quote became, partly shipped (created with the Acme quotes)."""
    order = SalesOrder.create(
        number="SO-52001",
        customer=quote.customer,
        site=quote.site,
        quote=quote,
        status="partially_shipped",
        order_date=today - timedelta(days=25),
        promised_date=today + timedelta(days=5),
        customer_po="PO-AC-7781",
        total_cents=quote.total_cents,
    )
    for line in quote.lines.order_by(QuoteLine.position):
        SalesOrderLine.create(
            order=order,
            position=line.position,
            product=line.product,
            description=line.description,
            quantity_milli=line.quantity_milli,
            shipped_milli=line.quantity_milli if line.position == 1 else 0,
            unit_price_cents=line.unit_price_cents,
            amount_cents=line.amount_cents,
        )
    Shipment.create(
        order=order,
        number="SH-88120",
        status="delivered",
        shipped_at=utcnow() - timedelta(days=12),
        delivered_at=utcnow() - timedelta(days=10),
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
    )


# (account, site, number, status, days ago ordered, promised in days, PO, lines, shipments)
# lines: (item, description, quantity, shipped, unit price cents)
# shipments: (number, status, days ago shipped, days ago delivered or None, carrier, tracking)
ORDERS = [
    (
        "ACME01",
        "P1",
        "SO-51988",
        "shipped",
        40,
        -30,
        "PO-AC-7702",
        [("BRKT-200", "Steel mounting bracket 200 mm", 150, 150, 1290)],
        [("SH-87990", "delivered", 33, 31, "FedEx", "7489 2231 0091")],
    ),
    (
        "ACME01",
        "WH",
        "SO-52017",
        "open",
        3,
        12,
        "PO-AC-7810",
        [
            ("PAL-WRAP", "Stretch wrap 500 mm (roll)", 60, 0, 1790),
            ("GSKT-55", "Nitrile gasket 55 mm", 500, 0, 375),
        ],
        [],
    ),
    (
        "BIRCH01",
        "MAIN",
        "SO-52010",
        "partially_shipped",
        8,
        6,
        "BD-2291",
        [
            ("GSKT-55", "Nitrile gasket 55 mm", 40, 40, 375),
            ("SRV-HR", "Chair upholstery repair (hours)", 4, 0, 9500),
        ],
        [("SH-88131", "shipped", 2, None, "USPS", "9400 1000 0000 0000 0000 00")],
    ),
    (
        "COPPER1",
        "DEPOT",
        "SO-51950",
        "closed",
        60,
        -45,
        "CL-5530",
        [("PAL-WRAP", "Stretch wrap 500 mm (roll)", 100, 100, 1650)],
        [
            ("SH-87802", "delivered", 52, 50, "DHL", "JD014600006281230001"),
            ("SH-87850", "delivered", 47, 45, "DHL", "JD014600006281230077"),
        ],
    ),
]


def _orders(today: date) -> int:
    products = _products()
    now = utcnow()
    created = 0
    for account, site_code, number, status, ago, promised, po, lines, shipments in ORDERS:
        if SalesOrder.get_or_none(SalesOrder.number == number) is not None:
            continue
        customer = _customer(account)
        order = SalesOrder.create(
            number=number,
            customer=customer,
            site=_site(customer, site_code),
            status=status,
            order_date=today - timedelta(days=ago),
            promised_date=today + timedelta(days=promised),
            customer_po=po,
            total_cents=sum(q * price for _, _, q, _, price in lines),
        )
        for position, (item, description, quantity, shipped, price) in enumerate(lines, 1):
            SalesOrderLine.create(
                order=order,
                position=position,
                product=products.get(item),
                description=description,
                quantity_milli=quantity * 1000,
                shipped_milli=shipped * 1000,
                unit_price_cents=price,
                amount_cents=quantity * price,
            )
        for ship_no, ship_status, shipped_ago, delivered_ago, carrier, tracking in shipments:
            Shipment.create(
                order=order,
                number=ship_no,
                status=ship_status,
                shipped_at=now - timedelta(days=shipped_ago),
                delivered_at=(
                    now - timedelta(days=delivered_ago) if delivered_ago is not None else None
                ),
                carrier=carrier,
                tracking_number=tracking,
            )
        created += 1
    return created


# --- support ------------------------------------------------------------------------------


def _case(customer, user, subject, status, days_ago, messages, **fields) -> Case:
    created = utcnow() - timedelta(days=days_ago)
    case = Case.create(
        number=counters.next_number("case", "CASE"),
        customer=customer,
        portal_user=user,
        subject=subject,
        status=status,
        created_at=created,
        updated_at=created + timedelta(hours=len(messages)),
        resolved_at=created + timedelta(days=1) if status in ("resolved", "closed") else None,
        **fields,
    )
    for hours, author, body, internal in messages:
        CaseMessage.create(
            case=case,
            portal_user=author if isinstance(author, PortalUser) else None,
            staff_user=author if isinstance(author, StaffUser) else None,
            body=body,
            internal=internal,
            created_at=created + timedelta(hours=hours),
        )
    return case


def _cases(today: date) -> int:
    """Per customer, only when it has no case yet."""
    created = 0
    agent = _staff("agent@example.com")
    acme, birch = _customer("ACME01"), _customer("BIRCH01")
    if not Case.select().where(Case.customer == acme).exists():
        ap, plant2 = _user("ap@acme.example"), _user("plant2@acme.example")
        invoice = Invoice.get(Invoice.number == "INV-10031")
        _case(
            acme,
            ap,
            "Invoice INV-10031: calibration hours billed twice?",
            "open",
            4,
            [
                (0, ap, "The calibration visit shows 6 hours twice. Can you check?", False),
                (3, agent, "Thanks Alex, we are checking the technician's timesheet.", False),
                (4, agent, "Timesheet shows 6 h total; credit note needed.", True),
            ],
            invoice=invoice,
            site=invoice.site_id,
            assigned_to=agent,
        )
        order = SalesOrder.get(SalesOrder.number == "SO-52001")
        _case(
            acme,
            plant2,
            "Remaining bolts for SO-52001",
            "waiting",
            2,
            [
                (0, plant2, "When will the M10 bolts on SO-52001 ship?", False),
                (2, agent, "They ship Thursday. Should we send them to dock B?", False),
            ],
            order=order,
            site=order.site_id,
            assigned_to=agent,
        )
        created += 2
    if not Case.select().where(Case.customer == birch).exists():
        office = _user("office@birchwood.example")
        _case(
            birch,
            office,
            "Please update our billing address",
            "resolved",
            12,
            [
                (0, office, "We moved to Suite 3. Please update the invoices.", False),
                (5, agent, "Done — new invoices show Suite 3.", False),
            ],
            assigned_to=agent,
        )
        created += 1
    return created


def _settings() -> int:
    """Demo texts, only where staff have not written their own."""
    current = settings.load()
    changes = {k: v for k, v in SETTINGS.items() if current[k] == settings.DEFAULTS[k]}
    return len(settings.save_in_txn(changes)) if changes else 0
