"""The whole domain schema: customers and their people, billing, sales, support, operations.

Money is integer minor units (cents) in `BigIntegerField`s; CHECK constraints keep balances
from going negative or being over-applied even if application code gets it wrong.
Query methods return composable queries scoped to the caller, Peewee-style.
"""

from flask_login import UserMixin
from peewee import (
    JOIN,
    SQL,
    BigIntegerField,
    BooleanField,
    CharField,
    Check,
    DateField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
    chunked,
)
from peewee import (
    Case as SqlCase,
)

from .db import Slot, UtcDateTimeField, db, in_values, is_sqlite, utcnow
from .ids import public_id

PORTAL_ROLES = ("invoices", "statements", "quotes", "orders", "cases", "company_admin")
STAFF_ROLES = ("admin", "agent")


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class ProductLines:
    """Lines of a document (RFQ, quote, order) that may name a catalog product; `OWNER` is
    the name of the foreign key to the document."""

    OWNER = ""

    @classmethod
    def of(cls, document) -> list:
        """The document's lines in printed order, each with its product (one query)."""
        return list(
            cls.select(cls, Product)
            .join(Product, JOIN.LEFT_OUTER)
            .where(getattr(cls, cls.OWNER) == document)
            .order_by(cls.position, cls.id)
        )


class PublicId:
    """Rows a customer's URLs name by an opaque token, never the sequential id (portal/ids.py,
    checklist E3); `KIND` names the row type the token is tagged with."""

    KIND = ""

    @property
    def public_id(self) -> str:
        return public_id(self.KIND, self.id)


class CustomerOwned:
    """Rows that belong to a customer and maybe a site: fetched only through `for_user`."""

    @classmethod
    def for_user(cls, user, *fields):
        """A query of the rows this portal user may see: own company, and own sites if limited."""
        return cls.within(user.contact.customer_id, user.site_ids, *fields)

    @classmethod
    def scoped(cls, sites: int | None, *fields):
        """`for_user` for a `prepared` query: the company and each allowed site are Slots
        (`customer`, `site0`…), bound by `scope_of(user)`; `sites` is the shape: None for
        the whole account, else how many sites the user is limited to."""
        return cls.within(Slot("customer"), site_slots(sites), *fields)

    @classmethod
    def within(cls, customer, sites, *fields):
        """Rows of `customer`, and of `sites` unless None (values, or Slots)."""
        query = cls.select(*fields).where(cls.customer == customer)
        if sites is not None:
            query = query.where(cls.site.in_(sites))
        return query

    @staticmethod
    def scope_of(user) -> tuple[int | None, dict]:
        """The shape and Slot values of `scoped` for this user."""
        values = {"customer": user.contact.customer_id}
        site_ids = user.site_ids
        if site_ids is None:
            return None, values
        values.update((f"site{i}", site_id) for i, site_id in enumerate(site_ids))
        return len(site_ids), values


def site_slots(sites: int | None) -> list | None:
    """The Slots `scope_of` binds for a site-limited user (None for the whole account)."""
    return None if sites is None else [Slot(f"site{i}") for i in range(sites)]


class LoginMixin(UserMixin):
    """Flask-Login's view of a user: its id is the server-side session key, not the row id."""

    session_key = None
    is_staff = False

    def get_id(self):
        return self.session_key


# --- configuration and operations -------------------------------------------------------


class Setting(BaseModel):
    """One portal setting, JSON-encoded; `services.settings` owns defaults and types."""

    key = CharField(primary_key=True, max_length=100)
    value = TextField()


class Counter(BaseModel):
    """Named sequences (receipt, case, RFQ numbers) incremented inside write transactions."""

    name = CharField(primary_key=True, max_length=50)
    value = BigIntegerField(default=0)


class AuditLog(BaseModel):
    """Who did what, when and from where."""

    at = UtcDateTimeField(default=utcnow, index=True)
    actor_kind = CharField(max_length=20)  # portal, staff, guest, system
    actor_id = IntegerField(null=True)
    actor_label = CharField(max_length=255, default="")
    action = CharField(max_length=100, index=True)
    object_type = CharField(max_length=50, default="")
    object_id = CharField(max_length=100, default="")
    detail = TextField(default="")
    ip = CharField(max_length=64, default="")


class OutboxMessage(BaseModel):
    """An email written in the same transaction as the change that causes it."""

    created_at = UtcDateTimeField(default=utcnow)
    kind = CharField(max_length=50, default="")
    to_addr = CharField(max_length=320)
    subject = CharField(max_length=998)
    body_text = TextField()
    body_html = TextField(default="")
    status = CharField(max_length=10, default="queued", index=True)  # queued, sent, failed
    attempts = IntegerField(default=0)
    next_attempt_at = UtcDateTimeField(default=utcnow, index=True)
    last_error = TextField(default="")
    sent_at = UtcDateTimeField(null=True)
    message_id = CharField(max_length=255, default="")
    # Extra headers as a JSON object (List-Unsubscribe, Reply-To), fixed when queued (0031).
    headers = TextField(default="")


class AuthThrottle(BaseModel):
    """Failure counters per (scope, hashed key), shared by every worker and kept across restarts."""

    scope = CharField(max_length=30)
    key_hash = CharField(max_length=64)
    window_start = UtcDateTimeField()
    failures = IntegerField(default=0)
    day_start = UtcDateTimeField()
    day_failures = IntegerField(default=0)
    locked_until = UtcDateTimeField(null=True)

    class Meta:
        indexes = ((("scope", "key_hash"), True),)


# --- customers and people ---------------------------------------------------------------


class Customer(BaseModel):
    """A business account; its account-class options decide how it may use the portal."""

    account_number = CharField(max_length=50, unique=True)
    name = CharField(max_length=255)
    email = CharField(max_length=320, default="")
    phone = CharField(max_length=50, default="")
    address = TextField(default="")
    portal_enabled = BooleanField(default=True)
    allow_self_registration = BooleanField(default=False)
    auto_invite = BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)
    updated_at = UtcDateTimeField(default=utcnow)
    # Raised by database triggers whenever the customer's invoices change (0010); keys the
    # cached billing aggregates, so it is never written from Python.
    billing_version = IntegerField(default=0)
    # The transaction that last raised it (0030, PostgreSQL): raised once per transaction.
    billing_version_txid = BigIntegerField(null=True)
    # Its Customer at Stripe, made when a login first saves a payment method (0015).
    stripe_customer_id = CharField(max_length=255, null=True)

    class Meta:
        # save() writes only the fields that were changed, so a form save can never put
        # back a billing_version read before a trigger raised it.
        only_save_dirty = True

    @classmethod
    def lock_versions(cls, ids) -> None:
        """Take now, in id order, the row locks the billing-version trigger (0010) takes at
        commit in the order invoices were written. A transaction that changes invoices of
        several customers calls this last, so two of them queue instead of deadlocking.
        PostgreSQL only: SQLite runs one writer at a time."""
        ids = sorted(set(ids))
        if not ids or is_sqlite():
            return
        for chunk in chunked(ids, 1000):
            locking = cls.select(cls.id).where(cls.id.in_(in_values(chunk)))
            list(locking.order_by(cls.id).for_update())

    @classmethod
    def bump_versions(cls, ids) -> None:
        """Raise the billing versions of these customers once, in id order, at the end of a
        bulk write that told the invoice trigger to skip its per-row work (0039)."""
        ids = sorted(set(ids))
        if not ids or is_sqlite():
            return
        for chunk in chunked(ids, 1000):
            cls.update(
                billing_version=cls.billing_version + 1,
                billing_version_txid=SQL("txid_current()"),
            ).where(cls.id.in_(in_values(chunk))).execute()


class Site(BaseModel):
    """A customer's location (ship-to / bill-to); portal users may be limited to some."""

    customer = ForeignKeyField(Customer, backref="sites", on_delete="CASCADE")
    site_code = CharField(max_length=50)
    name = CharField(max_length=255)
    address = TextField(default="")

    class Meta:
        indexes = ((("customer", "site_code"), True),)

    @classmethod
    def belongs_to(cls, site_id: int, customer_id: int) -> bool:
        """True when the site is one of the customer's."""
        return cls.select().where((cls.id == site_id) & (cls.customer == customer_id)).exists()


class Contact(BaseModel):
    """A person at a customer; at most one portal login each."""

    customer = ForeignKeyField(Customer, backref="contacts", on_delete="CASCADE")
    site = ForeignKeyField(Site, null=True, backref="contacts", on_delete="SET NULL")
    email = CharField(max_length=320, null=True, unique=True)  # stored lower-case
    first_name = CharField(max_length=100, default="")
    last_name = CharField(max_length=100, default="")
    phone = CharField(max_length=50, default="")
    # Gets billing mail: new invoices, payment reminders, statements (0031).
    billing = BooleanField(default=True)
    created_at = UtcDateTimeField(default=utcnow)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or (self.email or "")


class PortalUser(PublicId, LoginMixin, BaseModel):
    """A contact's login: roles, site scope and status (invited, pending, active, disabled)."""

    KIND = "portal_user"

    contact = ForeignKeyField(Contact, unique=True, backref="portal_users", on_delete="CASCADE")
    password_hash = CharField(max_length=255, null=True)
    status = CharField(max_length=10, default="invited", index=True)
    roles = CharField(max_length=255, default="")  # comma-separated PORTAL_ROLES
    all_sites = BooleanField(default=True)
    # Rotated whenever the password changes: binds reset/invite links and ends old sessions.
    auth_stamp = CharField(max_length=32)
    terms_version = IntegerField(null=True)
    # The login's own IANA time zone for showing times; empty: the business's.
    time_zone = CharField(max_length=64, default="")
    created_at = UtcDateTimeField(default=utcnow)
    activated_at = UtcDateTimeField(null=True)
    last_login_at = UtcDateTimeField(null=True)
    invited_at = UtcDateTimeField(null=True)

    @property
    def role_set(self) -> frozenset:
        return frozenset(r for r in self.roles.split(",") if r)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def email(self) -> str:
        return self.contact.email or ""

    @property
    def display_name(self) -> str:
        return self.contact.full_name

    def has_role(self, role: str) -> bool:
        return role in self.role_set

    @property
    def site_ids(self) -> list[int] | None:
        """None when the user sees the whole account, else the ids of the allowed sites."""
        if self.all_sites:
            return None
        if not hasattr(self, "_site_ids"):
            self._site_ids = [link.site_id for link in self.site_links]
        return self._site_ids

    @property
    def customer(self):
        return self.contact.customer


class PortalUserSite(BaseModel):
    """A site a site-scoped portal user may see."""

    user = ForeignKeyField(PortalUser, backref="site_links", on_delete="CASCADE")
    site = ForeignKeyField(Site, on_delete="CASCADE")

    class Meta:
        indexes = ((("user", "site"), True),)


class TermsAcceptance(BaseModel):
    """A portal user's acceptance of one version of the login terms."""

    user = ForeignKeyField(PortalUser, backref="terms_acceptances", on_delete="CASCADE")
    version = IntegerField()
    accepted_at = UtcDateTimeField(default=utcnow)
    ip = CharField(max_length=64, default="")


class AccessRequest(BaseModel):
    """Someone asking for a portal login without an invoice to prove it; staff decide."""

    name = CharField(max_length=255)
    company = CharField(max_length=255)
    email = CharField(max_length=320)
    phone = CharField(max_length=50, default="")
    account_number = CharField(max_length=50, default="")
    message = TextField(default="")
    status = CharField(max_length=10, default="pending", index=True)
    created_at = UtcDateTimeField(default=utcnow)
    decided_at = UtcDateTimeField(null=True)
    ip = CharField(max_length=64, default="")


class StaffUser(LoginMixin, BaseModel):
    """A back-office login: `admin` (settings, staff) or `agent`."""

    email = CharField(max_length=320, unique=True)
    name = CharField(max_length=255, default="")
    password_hash = CharField(max_length=255)
    role = CharField(max_length=10, default="agent")
    active = BooleanField(default=True)
    auth_stamp = CharField(max_length=32)
    created_at = UtcDateTimeField(default=utcnow)
    last_login_at = UtcDateTimeField(null=True)
    # Two-step sign-in (0009): the authenticator's TOTP secret, sealed like quick-pay codes,
    # and the last time step accepted, so a code works once (checklist C5).
    totp_secret = CharField(max_length=255, null=True)
    totp_last_step = BigIntegerField(null=True)

    is_staff = True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def display_name(self) -> str:
        return self.name or self.email


class LoginSession(BaseModel):
    """A signed-in browser session; revoking the row signs that browser out server-side."""

    key_hash = CharField(max_length=64, unique=True)
    portal_user = ForeignKeyField(PortalUser, null=True, backref="sessions", on_delete="CASCADE")
    staff_user = ForeignKeyField(StaffUser, null=True, backref="sessions", on_delete="CASCADE")
    created_at = UtcDateTimeField(default=utcnow)
    last_seen_at = UtcDateTimeField(default=utcnow)
    expires_at = UtcDateTimeField()
    revoked_at = UtcDateTimeField(null=True)
    ip = CharField(max_length=64, default="")
    user_agent = CharField(max_length=255, default="")

    class Meta:
        constraints = [
            Check("(portal_user_id IS NULL) <> (staff_user_id IS NULL)"),
        ]


# --- catalogue --------------------------------------------------------------------------


class Product(BaseModel):
    """An item customers can ask a quote for."""

    item_code = CharField(max_length=50, unique=True)
    description = CharField(max_length=255)
    unit = CharField(max_length=20, default="ea")
    price_cents = BigIntegerField(default=0, constraints=[Check("price_cents >= 0")])
    available_quantity = IntegerField(default=0)
    # A withdrawn product stays for the lines that name it, but cannot be ordered (0023).
    active = BooleanField(default=True)


class CustomerPrice(BaseModel):
    """A customer-specific price for a product."""

    customer = ForeignKeyField(Customer, backref="prices", on_delete="CASCADE")
    product = ForeignKeyField(Product, backref="customer_prices", on_delete="CASCADE")
    price_cents = BigIntegerField(constraints=[Check("price_cents >= 0")])

    class Meta:
        indexes = ((("customer", "product"), True),)


# --- billing ----------------------------------------------------------------------------


class InvoiceFigures:
    """What an invoice's numbers say, for the model and for `InvoiceRow` alike: the one
    definition of an invoice's amount due that every page, email and export reads."""

    @property
    def balance_cents(self) -> int:
        """The amount due: nothing on a void invoice, else total less paid and discount."""
        if self.status == "void":
            return 0
        return self.total_cents - self.amount_paid_cents - self.discount_taken_cents

    @property
    def due_cents(self) -> int:
        """The amount due, under the name `figures.Payable` also shows it by."""
        return self.balance_cents

    @property
    def is_paid(self) -> bool:
        return self.status == "open" and self.balance_cents <= 0

    def is_overdue(self, today) -> bool:
        return self.status == "open" and self.balance_cents > 0 and self.due_date < today

    def state(self, today) -> str:
        """open, overdue, partly paid, paid or void, as a customer reads it."""
        if self.status == "void":
            return "void"
        if self.balance_cents <= 0:
            return "paid"
        if self.is_overdue(today):
            return "overdue"
        if self.amount_paid_cents or self.discount_taken_cents:
            return "partly paid"
        return "open"


class PlainRow:
    """A row a page only reads: the selected columns as plain attributes.

    Built as model instances, a page of rows spends most of its time in Peewee's field
    descriptors and dirty tracking; build these with `query.objects(PlainRow)` and select only
    the columns the page shows. Foreign keys arrive as ids under the field's name.
    """

    def __init__(self, **columns):
        self.__dict__.update(columns)


class InvoiceRow(InvoiceFigures, PlainRow):
    """An invoice in a list: `INVOICE_ROW_FIELDS`, with the model's balance and state."""


class Invoice(PublicId, InvoiceFigures, CustomerOwned, BaseModel):
    """An invoice from the books; balance = total - paid - discount taken, never negative."""

    KIND = "invoice"

    number = CharField(max_length=50, unique=True)
    customer = ForeignKeyField(Customer, backref="invoices", on_delete="RESTRICT")
    site = ForeignKeyField(Site, null=True, backref="invoices", on_delete="SET NULL")
    issue_date = DateField(index=True)
    due_date = DateField(index=True)
    total_cents = BigIntegerField()
    amount_paid_cents = BigIntegerField(default=0)
    discount_taken_cents = BigIntegerField(default=0)
    currency = CharField(max_length=3, default="USD")
    # Early-payment terms: `discount_bp` basis points (200 = 2.00 %) within `discount_days`.
    discount_bp = IntegerField(default=0)
    discount_days = IntegerField(default=0)
    description = TextField(default="")
    customer_po = CharField(max_length=50, default="")  # 0041: the customer's PO number
    status = CharField(max_length=10, default="open", index=True)  # open, void
    # The quick-pay code: an argon2id hash to check it, and a copy sealed with a key derived
    # from SECRET_KEY so a signed-in owner can print it; a database dump alone reveals neither.
    quick_pay_hash = CharField(max_length=255)
    quick_pay_sealed = CharField(max_length=255, default="")
    # Bumped when the code is regenerated; signed pay links carry it and die with it.
    quick_pay_version = IntegerField(default=1)
    created_at = UtcDateTimeField(default=utcnow)
    updated_at = UtcDateTimeField(default=utcnow)
    voided_at = UtcDateTimeField(null=True)

    class Meta:
        constraints = [
            Check("total_cents >= 0"),
            Check("amount_paid_cents >= 0"),
            Check("discount_taken_cents >= 0"),
            Check("amount_paid_cents + discount_taken_cents <= total_cents"),
        ]
        indexes = (
            # 0004: covers the balance and aging aggregates (no table reads at 100k rows).
            (
                (
                    "customer",
                    "status",
                    "due_date",
                    "total_cents",
                    "amount_paid_cents",
                    "discount_taken_cents",
                ),
                False,
            ),
            (("customer", "issue_date"), False),  # 0004: the invoice list
        )

    @classmethod
    def balance_expr(cls):
        return cls.total_cents - cls.amount_paid_cents - cls.discount_taken_cents

    @classmethod
    def due_expr(cls):
        """The amount due in SQL, as `balance_cents` reads it: nothing on a void invoice."""
        return SqlCase(None, [(cls.status == "open", cls.balance_expr())], 0)

    @classmethod
    def unpaid(cls, query):
        """Narrow a query to open invoices with something left to pay (the partial index
        `invoice_unpaid` of migration 0008 holds exactly these rows)."""
        return query.where((cls.status == "open") & (cls.balance_expr() > 0))


# 0008: the unpaid invoices only (most of an account's invoices are paid), for the
# dashboard aging and the open and overdue tabs; the same WHERE as `Invoice.unpaid()`.
Invoice.add_index(
    Invoice.index(
        Invoice.customer,
        Invoice.status,
        Invoice.due_date,
        Invoice.total_cents,
        Invoice.amount_paid_cents,
        Invoice.discount_taken_cents,
        where=(Invoice.status == "open") & (Invoice.balance_expr() > 0),
        name="invoice_unpaid",
    )
)
# 0045: the same rows by due date, for the back office's open and overdue lists.
Invoice.add_index(
    Invoice.index(
        Invoice.due_date,
        Invoice.id,
        where=(Invoice.status == "open") & (Invoice.balance_expr() > 0),
        name="invoice_unpaid_due",
    )
)


# What an invoice list shows (no quick-pay secrets, no timestamps), for `InvoiceRow`.
INVOICE_ROW_FIELDS = (
    Invoice.id,
    Invoice.number,
    Invoice.description,
    Invoice.customer_po,
    Invoice.issue_date,
    Invoice.due_date,
    Invoice.status,
    Invoice.total_cents,
    Invoice.amount_paid_cents,
    Invoice.discount_taken_cents,
    Invoice.currency,
    Invoice.discount_bp,
    Invoice.discount_days,
)


class InvoiceLine(BaseModel):
    """A line of an invoice; quantities are thousandths so 2.5 hours is exact."""

    invoice = ForeignKeyField(Invoice, backref="lines", on_delete="CASCADE")
    position = IntegerField(default=0)
    item_code = CharField(max_length=50, default="")
    description = CharField(max_length=500)
    quantity_milli = BigIntegerField(default=1000)
    unit_price_cents = BigIntegerField(default=0)
    amount_cents = BigIntegerField(default=0)


class PaymentAttempt(BaseModel):
    """One try at paying, recorded with its idempotency key before any provider is called."""

    key = CharField(max_length=36, unique=True)  # UUID4, sent as the provider idempotency key
    provider = CharField(max_length=30)
    # pending -> redirected -> succeeded | failed | cancelled | expired; flagged on mismatch
    status = CharField(max_length=12, default="pending", index=True)
    customer = ForeignKeyField(Customer, backref="payment_attempts", on_delete="RESTRICT")
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    guest = BooleanField(default=False)
    payer_name = CharField(max_length=255, default="")
    payer_email = CharField(max_length=320, default="")
    amount_cents = BigIntegerField(constraints=[Check("amount_cents > 0")])
    currency = CharField(max_length=3)
    provider_session = CharField(max_length=255, null=True, unique=True)
    failure_reason = CharField(max_length=255, default="")
    client_ip = CharField(max_length=64, default="")
    # Who started it (portal user or browser session): a double click reuses the same attempt.
    owner = CharField(max_length=64, default="")
    created_at = UtcDateTimeField(default=utcnow)
    updated_at = UtcDateTimeField(default=utcnow)
    expires_at = UtcDateTimeField()


class PaymentAttemptItem(BaseModel):
    """How much of an attempt goes to one invoice; at most one open attempt per invoice."""

    attempt = ForeignKeyField(PaymentAttempt, backref="items", on_delete="CASCADE")
    invoice = ForeignKeyField(Invoice, backref="attempt_items", on_delete="RESTRICT")
    amount_cents = BigIntegerField(constraints=[Check("amount_cents >= 0")])
    discount_cents = BigIntegerField(default=0, constraints=[Check("discount_cents >= 0")])
    # TRUE while the attempt is open, NULL after: the partial unique index below allows one
    # open item per invoice on both SQLite and PostgreSQL.
    is_open = BooleanField(null=True, default=True)


PaymentAttemptItem.add_index(
    PaymentAttemptItem.index(
        PaymentAttemptItem.invoice,
        unique=True,
        where=PaymentAttemptItem.is_open,
        name="payment_attempt_item_one_open",
    )
)


class Payment(PublicId, BaseModel):
    """Money received (or promised offline), applied to invoices; the rest is credit."""

    KIND = "payment"

    receipt_number = CharField(max_length=30, unique=True)
    attempt = ForeignKeyField(PaymentAttempt, null=True, unique=True, on_delete="RESTRICT")
    provider = CharField(max_length=30)
    provider_reference = CharField(max_length=255)
    customer = ForeignKeyField(Customer, backref="payments", on_delete="RESTRICT")
    amount_cents = BigIntegerField(constraints=[Check("amount_cents > 0")])
    currency = CharField(max_length=3)
    # The part of the payment not (yet) applied to an invoice: the customer's credit, which
    # shrinks as credit is applied to invoices or refunded.
    unapplied_cents = BigIntegerField(default=0)
    # What an offline payer said they would send; `amount_cents` is what arrived (0012).
    intended_cents = BigIntegerField(null=True)
    # pending (offline, awaiting staff), applied, rejected, cancelled (by the payer), void
    status = CharField(max_length=10, default="applied", index=True)
    flagged = BooleanField(default=False, index=True)
    flag_reason = CharField(max_length=255, default="")
    payer_name = CharField(max_length=255, default="")
    payer_email = CharField(max_length=320, default="")
    received_at = UtcDateTimeField(default=utcnow, index=True)
    posted_at = UtcDateTimeField(null=True, index=True)
    voided_at = UtcDateTimeField(null=True)

    class Meta:
        indexes = (
            (("provider", "provider_reference"), True),
            (("customer", "received_at"), False),  # 0004: payment history
        )
        constraints = [Check("unapplied_cents >= 0 AND unapplied_cents <= amount_cents")]


# 0012: the payments holding credit, for the per-customer "credit available" sum.
Payment.add_index(
    Payment.index(
        Payment.customer,
        where=(Payment.status == "applied") & (Payment.unapplied_cents > 0),
        name="payment_with_credit",
    )
)


class PaymentApplication(BaseModel):
    """The part of a payment applied to one invoice, with the discount it earned."""

    payment = ForeignKeyField(Payment, backref="applications", on_delete="CASCADE")
    invoice = ForeignKeyField(Invoice, backref="applications", on_delete="RESTRICT")
    amount_cents = BigIntegerField(constraints=[Check("amount_cents >= 0")])
    discount_cents = BigIntegerField(default=0, constraints=[Check("discount_cents >= 0")])
    created_at = UtcDateTimeField(default=utcnow)
    # payment: paid when the payment arrived; credit: the payment's credit applied later.
    source = CharField(max_length=10, default="payment")
    posted_at = UtcDateTimeField(null=True)  # a credit application exported to the books
    # The payment's customer, filled by the database on insert (0046): an account's
    # applications side by side in an index, for its statement's history sums.
    customer = ForeignKeyField(Customer, null=True, on_delete="RESTRICT", backref="+", index=False)


# 0044: the early-payment discounts of an account's payments, which its statement lists (the
# few applications with a discount, instead of a scan of every application at 1M invoices).
PaymentApplication.add_index(
    PaymentApplication.index(
        PaymentApplication.payment,
        where=PaymentApplication.discount_cents > 0,
        name="payment_application_discounts",
    )
)
# 0046: an account's applications and payments in two covering indexes (statement sums).
PaymentApplication.add_index(
    PaymentApplication.index(
        PaymentApplication.customer,
        PaymentApplication.invoice,
        PaymentApplication.payment,
        PaymentApplication.amount_cents,
        PaymentApplication.discount_cents,
        name="payment_application_account",
    )
)
Payment.add_index(
    Payment.index(
        Payment.customer, Payment.status, Payment.id, Payment.received_at, name="payment_account"
    )
)
# 0048: the staff lists' newest-first order (and each row's customer), one index each.
Invoice.add_index(
    Invoice.index(Invoice.issue_date, Invoice.id, Invoice.customer, name="invoice_newest")
)
Payment.add_index(
    Payment.index(Payment.received_at, Payment.id, Payment.customer, name="payment_newest")
)


class Refund(BaseModel):
    """Money given back from a payment: out of its credit (recorded by staff), or a refund or
    dispute made at the provider (reported by its webhook, `staff_user` empty)."""

    payment = ForeignKeyField(Payment, backref="refunds", on_delete="RESTRICT")
    amount_cents = BigIntegerField(constraints=[Check("amount_cents > 0")])
    reference = CharField(max_length=100, default="")
    note = TextField(default="")
    staff_user = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    created_at = UtcDateTimeField(default=utcnow)
    posted_at = UtcDateTimeField(null=True)


class SavedMethod(BaseModel):
    """A card a login saved at the provider for its company, with the consent it gave (0015);
    the card itself stays at Stripe: Doorstep keeps only what it shows."""

    customer = ForeignKeyField(Customer, backref="saved_methods", on_delete="CASCADE")
    provider = CharField(max_length=30, default="stripe")
    method_id = CharField(max_length=255, unique=True)
    brand = CharField(max_length=30, default="")
    last4 = CharField(max_length=4, default="")
    exp_month = IntegerField(null=True)
    exp_year = IntegerField(null=True)
    saved_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    consent = TextField(default="")
    saved_at = UtcDateTimeField(default=utcnow)
    active = BooleanField(default=True)
    removed_at = UtcDateTimeField(null=True)

    @property
    def label(self) -> str:
        return f"{(self.brand or 'card').capitalize()} •••• {self.last4}"


class ProviderEvent(BaseModel):
    """A webhook event a provider sent, recorded once handled (0014): a redelivery is
    answered without doing anything again."""

    provider = CharField(max_length=30)
    event_id = CharField(max_length=255)
    type = CharField(max_length=100, default="")
    received_at = UtcDateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("provider", "event_id"), True),)


class Autopay(BaseModel):
    """A company's autopay enrolment (0016), one per customer: which saved card pays, up to
    how much per invoice, and when (on the due date, `days_before` it, or on issue). Invoices
    whose charge day falls before `starts_on` (the day it was turned on) are left to pay by
    hand. `failures` counts failed charges in a row; at `autopay.DISABLE_AFTER` it turns off."""

    customer = ForeignKeyField(Customer, unique=True, backref="autopay", on_delete="CASCADE")
    method = ForeignKeyField(SavedMethod, null=True, on_delete="SET NULL")
    max_cents = BigIntegerField()  # in `currency`; invoices in other currencies are left
    currency = CharField(max_length=3, default="USD")
    timing = CharField(max_length=10, default="due")  # due, before, issue
    days_before = IntegerField(default=0)
    active = BooleanField(default=True)
    starts_on = DateField()
    enrolled_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    enrolled_at = UtcDateTimeField(default=utcnow)
    failures = IntegerField(default=0)
    stopped_at = UtcDateTimeField(null=True)
    stopped_reason = CharField(max_length=255, default="")
    updated_at = UtcDateTimeField(default=utcnow)


class AutopayConsent(BaseModel):
    """One acceptance of one version of the autopay authorisation, with its words (0016),
    kept like the login terms' acceptances."""

    customer = ForeignKeyField(Customer, backref="autopay_consents", on_delete="CASCADE")
    user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    version = IntegerField()
    text = TextField()
    accepted_at = UtcDateTimeField(default=utcnow)
    ip = CharField(max_length=64, default="")


class AutopayCharge(BaseModel):
    """Autopay's one charge of one invoice (0016): the unique invoice makes "charged once" a
    database fact. Written as `charging` and committed before the card is charged, so a crash
    leaves a row the worker resolves from the attempt rather than a second charge.

    States: charging -> paid | processing (a bank debit) | retry (at `next_try_at`) | failed,
    or skipped (over the maximum, or the card was gone)."""

    customer = ForeignKeyField(Customer, backref="autopay_charges", on_delete="CASCADE")
    invoice = ForeignKeyField(Invoice, unique=True, on_delete="CASCADE")
    amount_cents = BigIntegerField()
    state = CharField(max_length=12, default="charging", index=True)
    tries = IntegerField(default=0)
    next_try_at = UtcDateTimeField(null=True)
    attempt = ForeignKeyField(PaymentAttempt, null=True, on_delete="SET NULL")
    last_error = CharField(max_length=255, default="")
    created_at = UtcDateTimeField(default=utcnow)
    updated_at = UtcDateTimeField(default=utcnow)


class TestCheckoutSession(BaseModel):
    """The test-checkout simulator's own record: what a (simulated) provider would keep."""

    session_id = CharField(max_length=40, unique=True)
    attempt_key = CharField(max_length=36, unique=True)  # one provider object per attempt
    amount_cents = BigIntegerField()
    currency = CharField(max_length=3)
    merchant = CharField(max_length=255, default="")
    status = CharField(max_length=10, default="open")  # open, paid, declined, cancelled
    payment_ref = CharField(max_length=40, null=True, unique=True)
    created_at = UtcDateTimeField(default=utcnow)
    completed_at = UtcDateTimeField(null=True)


# --- sales ------------------------------------------------------------------------------


class Rfq(PublicId, CustomerOwned, BaseModel):
    """A customer's request for quote."""

    KIND = "rfq"

    number = CharField(max_length=30, unique=True)
    customer = ForeignKeyField(Customer, backref="rfqs", on_delete="RESTRICT")
    site = ForeignKeyField(Site, null=True, on_delete="SET NULL")
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    status = CharField(max_length=12, default="submitted", index=True)
    needed_by = DateField(null=True)
    notes = TextField(default="")
    created_at = UtcDateTimeField(default=utcnow)
    updated_at = UtcDateTimeField(default=utcnow)


class RfqLine(ProductLines, BaseModel):
    """One item asked for in an RFQ."""

    OWNER = "rfq"

    rfq = ForeignKeyField(Rfq, backref="lines", on_delete="CASCADE")
    position = IntegerField(default=0)
    product = ForeignKeyField(Product, null=True, on_delete="SET NULL")
    description = CharField(max_length=500)
    quantity_milli = BigIntegerField(default=1000, constraints=[Check("quantity_milli > 0")])


class Quote(PublicId, CustomerOwned, BaseModel):
    """A quote from the back office; published quotes can be accepted or declined."""

    KIND = "quote"

    number = CharField(max_length=30, unique=True)
    customer = ForeignKeyField(Customer, backref="quotes", on_delete="RESTRICT")
    site = ForeignKeyField(Site, null=True, on_delete="SET NULL")
    rfq = ForeignKeyField(Rfq, null=True, backref="quotes", on_delete="SET NULL")
    # draft, published, accepted, declined, expired
    status = CharField(max_length=10, default="draft", index=True)
    valid_until = DateField(null=True)
    currency = CharField(max_length=3, default="USD")
    total_cents = BigIntegerField(default=0, constraints=[Check("total_cents >= 0")])
    notes = TextField(default="")
    decline_reason = TextField(default="")
    customer_po = CharField(max_length=50, default="")  # given when accepting
    created_at = UtcDateTimeField(default=utcnow)
    published_at = UtcDateTimeField(null=True)
    decided_at = UtcDateTimeField(null=True)
    decided_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    # The digest of its lines and totals when published (0023): a quote changed after it
    # was published no longer matches, and cannot be accepted as it was.
    published_digest = CharField(max_length=64, null=True)


class QuoteLine(ProductLines, BaseModel):
    """A priced line of a quote."""

    OWNER = "quote"

    quote = ForeignKeyField(Quote, backref="lines", on_delete="CASCADE")
    position = IntegerField(default=0)
    product = ForeignKeyField(Product, null=True, on_delete="SET NULL")
    description = CharField(max_length=500)
    quantity_milli = BigIntegerField(default=1000)
    unit_price_cents = BigIntegerField(default=0)
    amount_cents = BigIntegerField(default=0)


class SalesOrder(PublicId, CustomerOwned, BaseModel):
    """A customer's order as the ERP knows it."""

    KIND = "order"
    STATUSES = ("open", "partially_shipped", "shipped", "closed", "cancelled")

    number = CharField(max_length=30, unique=True)
    customer = ForeignKeyField(Customer, backref="orders", on_delete="RESTRICT")
    site = ForeignKeyField(Site, null=True, on_delete="SET NULL")
    quote = ForeignKeyField(Quote, null=True, backref="orders", on_delete="SET NULL")
    status = CharField(max_length=20, default="open", index=True)
    order_date = DateField()
    promised_date = DateField(null=True)
    customer_po = CharField(max_length=50, default="")
    currency = CharField(max_length=3, default="USD")
    total_cents = BigIntegerField(default=0, constraints=[Check("total_cents >= 0")])


class SalesOrderLine(ProductLines, BaseModel):
    """A line of an order with how much of it has shipped."""

    OWNER = "order"

    order = ForeignKeyField(SalesOrder, backref="lines", on_delete="CASCADE")
    position = IntegerField(default=0)
    product = ForeignKeyField(Product, null=True, on_delete="SET NULL")
    description = CharField(max_length=500)
    quantity_milli = BigIntegerField(default=1000)
    shipped_milli = BigIntegerField(default=0)
    unit_price_cents = BigIntegerField(default=0)
    amount_cents = BigIntegerField(default=0)


class Shipment(BaseModel):
    """A shipment of (part of) an order, with carrier tracking."""

    order = ForeignKeyField(SalesOrder, backref="shipments", on_delete="CASCADE")
    number = CharField(max_length=30, unique=True)
    status = CharField(max_length=12, default="shipped")  # shipped, delivered
    shipped_at = UtcDateTimeField()
    delivered_at = UtcDateTimeField(null=True)
    carrier = CharField(max_length=50, default="")
    tracking_number = CharField(max_length=100, default="")


class Cart(BaseModel):
    """A login's cart (one each); `last_order` is what its latest checkout made."""

    portal_user = ForeignKeyField(PortalUser, unique=True, on_delete="CASCADE")
    customer = ForeignKeyField(Customer, on_delete="CASCADE")
    last_order = ForeignKeyField(SalesOrder, null=True, on_delete="SET NULL")
    updated_at = UtcDateTimeField(default=utcnow)


class CartLine(BaseModel):
    """A product in a cart; `was_price_cents` is the price a reorder's old document had."""

    cart = ForeignKeyField(Cart, backref="lines", on_delete="CASCADE")
    product = ForeignKeyField(Product, on_delete="CASCADE")
    quantity_milli = BigIntegerField()
    was_price_cents = BigIntegerField(null=True)
    added_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("cart", "product"), True),)


class WebOrder(BaseModel):
    """The portal's side of an order placed here: its own number (kept when the ERP's import
    renames the order), who placed it, the office's review and its one CSV export."""

    order = ForeignKeyField(SalesOrder, unique=True, backref="web", on_delete="CASCADE")
    number = CharField(max_length=30, unique=True)
    cart = ForeignKeyField(Cart, null=True, on_delete="SET NULL")
    checkout_key = CharField(max_length=64, unique=True)
    placed_by = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    placed_at = UtcDateTimeField(default=utcnow)
    requested_date = DateField(null=True)
    notes = TextField(default="")
    reviewed_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    reviewed_at = UtcDateTimeField(null=True)
    reject_reason = TextField(default="")
    exported_at = UtcDateTimeField(null=True, index=True)
    export_batch = CharField(max_length=32, null=True, index=True)
    linked_at = UtcDateTimeField(null=True)


class QuoteSignature(BaseModel):
    """A customer's acceptance of a quote as a signature: who typed which name, ticked the
    terms, from which address, and the digest of the lines and totals they accepted."""

    quote = ForeignKeyField(Quote, unique=True, backref="signatures", on_delete="CASCADE")
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    full_name = CharField(max_length=200)
    email = CharField(max_length=320, default="")
    customer_po = CharField(max_length=50, default="")
    terms_accepted = BooleanField(default=True)
    digest = CharField(max_length=64)
    total_cents = BigIntegerField()
    currency = CharField(max_length=3, default="USD")
    signed_at = UtcDateTimeField(default=utcnow)
    ip = CharField(max_length=64, default="")
    user_agent = CharField(max_length=255, default="")


# --- support ----------------------------------------------------------------------------


class Case(PublicId, CustomerOwned, BaseModel):
    """A support case opened by a customer (or by staff for one)."""

    KIND = "case"

    number = CharField(max_length=30, unique=True)
    customer = ForeignKeyField(Customer, backref="cases", on_delete="RESTRICT")
    site = ForeignKeyField(Site, null=True, on_delete="SET NULL")
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    invoice = ForeignKeyField(Invoice, null=True, backref="cases", on_delete="SET NULL")
    order = ForeignKeyField(SalesOrder, null=True, backref="cases", on_delete="SET NULL")
    subject = CharField(max_length=255)
    # new, open, waiting (on the customer), resolved, closed
    status = CharField(max_length=10, default="new", index=True)
    priority = CharField(max_length=10, default="normal")
    assigned_to = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    created_at = UtcDateTimeField(default=utcnow)
    updated_at = UtcDateTimeField(default=utcnow)
    resolved_at = UtcDateTimeField(null=True)
    # One of the categories in settings ("" for none); the form's token (one case per post).
    category = CharField(max_length=60, default="", index=True)
    request_key = CharField(max_length=64, null=True, unique=True)


class CaseMessage(BaseModel):
    """A message on a case; `internal` notes are for staff only."""

    case = ForeignKeyField(Case, backref="messages", on_delete="CASCADE")
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    staff_user = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    body = TextField()
    internal = BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)


class Attachment(BaseModel):
    """A file sent with something (`owner_kind` + `owner_id`: a case message, an RFQ…);
    `key` names it in URLs and in storage, `thumb_key` an image's thumbnail."""

    key = CharField(max_length=64, unique=True)
    owner_kind = CharField(max_length=20)
    owner_id = BigIntegerField()
    filename = CharField(max_length=255)
    content_type = CharField(max_length=100)
    size = BigIntegerField()
    thumb_key = CharField(max_length=64, null=True)
    width = IntegerField(null=True)
    height = IntegerField(null=True)
    portal_user = ForeignKeyField(PortalUser, null=True, on_delete="SET NULL")
    staff_user = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("owner_kind", "owner_id"), False),)


ALL_MODELS = [
    Setting,
    Counter,
    AuditLog,
    OutboxMessage,
    AuthThrottle,
    Customer,
    Site,
    Contact,
    PortalUser,
    PortalUserSite,
    TermsAcceptance,
    AccessRequest,
    StaffUser,
    LoginSession,
    Product,
    CustomerPrice,
    Invoice,
    InvoiceLine,
    PaymentAttempt,
    PaymentAttemptItem,
    Payment,
    PaymentApplication,
    Refund,
    SavedMethod,
    ProviderEvent,
    TestCheckoutSession,
    Rfq,
    RfqLine,
    Quote,
    QuoteLine,
    SalesOrder,
    SalesOrderLine,
    Shipment,
    Case,
    CaseMessage,
    Attachment,
]


# 0029, 0041 and 0043, PostgreSQL only: trigram indexes for the staff searches' "contains"
# (pg_trgm). Declared when the portal runs on PostgreSQL, so the schema check matches what
# the migration built.
POSTGRES_INDEXES = (
    (Invoice, SQL('"number" gin_trgm_ops'), "invoice_number_trgm"),
    (Invoice, SQL('"description" gin_trgm_ops'), "invoice_description_trgm"),
    (Invoice, SQL('"customer_po" gin_trgm_ops'), "invoice_customer_po_trgm"),
    (Customer, SQL('"name" gin_trgm_ops'), "customer_name_trgm"),
    # 0043: what the staff payment search matches.
    (Payment, SQL('"receipt_number" gin_trgm_ops'), "payment_receipt_number_trgm"),
    (Payment, SQL('"provider_reference" gin_trgm_ops'), "payment_provider_reference_trgm"),
    (Payment, SQL('"payer_email" gin_trgm_ops'), "payment_payer_email_trgm"),
    (Payment, SQL('"payer_name" gin_trgm_ops'), "payment_payer_name_trgm"),
)


def declare_postgres_indexes(postgres: bool = True) -> None:
    """Declare them (PostgreSQL), or take them back (a SQLite app built in the same process)."""
    for model, expression, name in POSTGRES_INDEXES:
        kept = [i for i in model._meta.indexes if getattr(i, "_name", None) != name]
        model._meta.indexes = kept
        if postgres:
            model.add_index(model.index(expression, using="gin", name=name))
