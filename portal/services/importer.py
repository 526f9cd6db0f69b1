"""CSV import of customers, sites, contacts, invoices, products, customer prices, and the
ERP's sales orders, their lines and their shipments.

The rules every kind follows (docs/design.md "CSV columns"):

- A header row is required. Column names match case-insensitively; an unknown or repeated
  column is an error, a missing optional column is fine.
- Rows upsert by natural key: account number; (account, site code); contact email
  (lower-cased); invoice number; item code; (account, item code).
- A column that is present sets its field on every row, and a blank cell sets the field's
  default (empty text, no site, 0, USD, the yes/no default). A column that is absent leaves
  existing rows as they are. Two exceptions on invoices: a blank `quick_pay_code` keeps the
  invoice's code (a new invoice gets a generated one), and `amount_paid` never lowers what
  is recorded as paid, because the portal may have taken payments the ERP has not posted.
- Every row is checked before anything is written. Each bad row is reported once as
  `line N: reason` (N is the physical line in the file, the header is line 1), and then
  nothing is written at all. A good file is written in one transaction, with one audit entry.
- Rows that would change nothing are not written, so importing a file twice is a no-op.

No kind's file creates what it refers to (a sites file cannot create customers), so
references resolve against the database; a key repeated within one file is an error.
"""

import codecs
import csv
import io
import multiprocessing
import os
import re
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from email_validator import EmailNotValidError, validate_email
from peewee import SQL, chunked, fn

from .. import money
from ..db import db, locked, utcnow, write_txn
from ..models import (
    Contact,
    Customer,
    CustomerPrice,
    Invoice,
    Product,
    Quote,
    SalesOrder,
    SalesOrderLine,
    Shipment,
    Site,
)
from ..money import AmountError, QuantityError, parse_amount, to_decimal
from ..security import (
    CODE_ALPHABET,
    hash_code,
    normalize_code,
    seal,
    unseal,
    verify_code,
)
from . import audit

KINDS = (
    "customers",
    "sites",
    "contacts",
    "invoices",
    "products",
    "prices",
    "orders",
    "order_lines",
    "shipments",
)

# Rows per INSERT and values per IN (...): far below SQLite's bound-parameter limit.
BATCH = 500
# Keys per IN (...) lookup.
LOOKUP_BATCH = 2000
# Above this many quick-pay codes to hash, hash them in worker processes (~0.6 ms each).
PARALLEL_HASH_THRESHOLD = 2000
MIN_CODE_LENGTH = 10
MAX_CODE_LENGTH = 32


class _Absent:
    """The column is not in the file: leave the field alone. Falsy, like a blank cell."""

    def __bool__(self):
        return False

    def __repr__(self):
        return "ABSENT"


ABSENT = _Absent()


@dataclass
class ImportResult:
    """What an import did: rows created and updated, or every bad row and nothing written."""

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class Row:
    """One parsed CSV row: its line, natural key, field values and the references it names."""

    line: int
    key: object
    values: dict
    refs: dict


class Cells:
    """One CSV row by column name; each reader records a problem instead of raising."""

    def __init__(self, cells: dict[str, str]):
        self.cells = cells
        self.problems: list[str] = []

    def text(self, column, max_length=None, required=False, one_line=True):
        """The stripped text of a column (blank is ''), or ABSENT."""
        if column not in self.cells:
            return ABSENT
        value = self.cells[column]
        if required and not value:
            self.problems.append(f"{column} is required")
        elif max_length and len(value) > max_length:
            self.problems.append(f"{column} is longer than {max_length} characters")
        elif one_line and ("\n" in value or "\r" in value):
            self.problems.append(f"{column} must be on one line")
        return value

    def parsed(self, column, parse: Callable, default, required=False, show=True):
        """`parse(cell)` for a filled cell, `default` for a blank one, or ABSENT."""
        if column not in self.cells:
            return ABSENT
        value = self.cells[column]
        if not value:
            if required:
                self.problems.append(f"{column} is required")
            return default
        try:
            return parse(value)
        except ValueError as exc:
            shown = f' "{_clip(value)}"' if show else ""
            self.problems.append(f"{column}{shown} {exc}")
            return default


def _clip(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _put(values: dict, name: str, value) -> None:
    if value is not ABSENT:
        values[name] = value


# --- cell parsers: return the value or raise ValueError("is not ...") --------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PERCENT = re.compile(r"^\d{1,2}(\.\d{1,2})?$")
_INTEGER = re.compile(r"^\d{1,9}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def parse_yes_no(text: str) -> bool:
    """`yes`/`no` (also y/n, true/false, 1/0), any case."""
    value = text.lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError("is not yes or no")


def parse_date(text: str) -> date:
    """A date written YYYY-MM-DD."""
    if not _DATE.match(text):
        raise ValueError("is not a date like 2025-01-31 (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("is not a real date") from None


def parse_money(text: str) -> int:
    """An amount like 1250.00 to cents (no negatives, at most two decimals)."""
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise ValueError(f"is not an amount like 1250.00 ({exc})") from None


def parse_count(text: str) -> int:
    """A whole number, zero or more."""
    if not _INTEGER.match(text):
        raise ValueError("is not a whole number (0 or more)")
    return int(text)


def parse_days(text: str) -> int:
    """A number of days from 0 to 365."""
    days = parse_count(text)
    if days > 365:
        raise ValueError("is more than 365 days")
    return days


def parse_percent_bp(text: str) -> int:
    """A percentage like 2 or 2.5 (a trailing % is fine) to basis points (200, 250)."""
    raw = text.removesuffix("%").strip()
    if not _PERCENT.match(raw):
        raise ValueError("is not a percentage below 100 like 2 or 2.5")
    return int(Decimal(raw) * 100)


def parse_currency(text: str) -> str:
    """A three-letter currency code, upper-cased."""
    if not _CURRENCY.match(text):
        raise ValueError("is not a three-letter currency code like USD")
    return text.upper()


def parse_email(text: str) -> str:
    """A syntactically valid email address, lower-cased (no DNS lookup)."""
    if len(text) > 320:
        raise ValueError("is longer than 320 characters")
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("is not a valid email address") from None
    return text.lower()


def parse_quick_pay_code(text: str) -> str:
    """A quick-pay code given by the ERP, normalized; weak codes are refused (checklist A3)."""
    code = normalize_code(text)
    if len(code) > MAX_CODE_LENGTH:
        raise ValueError(f"is longer than {MAX_CODE_LENGTH} characters")
    if len(code) < MIN_CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        raise ValueError(
            f"is too weak: use at least {MIN_CODE_LENGTH} characters from 0-9 and A-Z "
            "except I, L, O and U (spaces and dashes do not count), or leave it blank "
            "to have one generated"
        )
    if len(set(code)) < 5:
        raise ValueError("is too weak: it repeats too few different characters")
    return code


def parse_quantity(text: str) -> int:
    """A quantity like 2 or 2.5, zero included, to thousandths (`money.parse_quantity`)."""
    try:
        return money.parse_quantity(text, zero=True)
    except QuantityError:
        raise ValueError("is not a quantity like 2 or 2.5 (at most three decimals)") from None


def parse_order_status(text: str) -> str:
    """An order status: open, partially_shipped, shipped, closed or cancelled (any case)."""
    value = text.lower().replace(" ", "_").replace("-", "_")
    if value not in SalesOrder.STATUSES:
        raise ValueError("is not one of " + ", ".join(SalesOrder.STATUSES))
    return value


def parse_day_start(text: str) -> datetime:
    """A date (YYYY-MM-DD) as the start of that day, UTC."""
    return datetime.combine(parse_date(text), time(), tzinfo=UTC)


def new_code() -> str:
    """A quick-pay code like `security.new_quick_pay_code` (12 characters of CODE_ALPHABET,
    60 bits from `secrets`), drawn in one call: 100,000 codes take 0.1 s, not 3 s."""
    bits = secrets.randbits(60)
    return "".join(CODE_ALPHABET[(bits >> shift) & 31] for shift in range(55, -5, -5))


# --- lookups: one query per referenced table and chunk of keys, never one per row ---------


def _in_chunks(field_, keys: Iterable, select) -> list:
    """Rows of `select` whose `field_` is in `keys`, fetched LOOKUP_BATCH keys per query.

    The IN list is one SQL fragment with plain parameters: peewee's own `in_(list)` builds
    a node per value, which costs more than the query itself for 100,000 keys.
    """
    rows = []
    for chunk in chunked(sorted(set(keys)), LOOKUP_BATCH):
        placeholders = SQL("(" + ", ".join([db.param] * len(chunk)) + ")", chunk)
        rows.extend(select.where(field_.in_(placeholders)))
    return rows


def _customers(accounts: Iterable[str]) -> dict[str, Customer]:
    query = Customer.select()
    return {c.account_number: c for c in _in_chunks(Customer.account_number, accounts, query)}


def _sites(customer_ids: Iterable[int]) -> dict[tuple[int, str], Site]:
    query = Site.select()
    return {(s.customer_id, s.site_code): s for s in _in_chunks(Site.customer, customer_ids, query)}


def _account_of(customer_id: int, customers: dict[str, Customer]) -> str:
    """The account number of a customer id, from what was fetched or (rarely) one query."""
    for customer in customers.values():
        if customer.id == customer_id:
            return customer.account_number
    found = Customer.get_or_none(Customer.id == customer_id)
    return found.account_number if found else f"#{customer_id}"


def _changes(obj, values: dict) -> dict:
    """The fields of `values` that differ from what `obj` holds (raw column values)."""
    return {name: value for name, value in values.items() if obj.__data__.get(name) != value}


def _insert(model, rows: list[dict]) -> None:
    """Insert many rows of one shape, BATCH per multi-row INSERT statement.

    The statement is written here, with each value converted by its field's `db_value`,
    because peewee's `insert_many` spends far longer building SQL for 100,000 rows than
    the database spends storing them.
    """
    if not rows:
        return
    names = list(rows[0])
    # Fields the rows leave out get their model default, as `insert_many` would give them.
    defaults = {
        f.name: f.default() if callable(f.default) else f.default
        for f in model._meta.sorted_fields
        if f.name not in names and f.default is not None and not f.primary_key
    }
    if defaults:
        rows = [{**row, **defaults} for row in rows]
        names += list(defaults)
    fields = [model._meta.fields[name] for name in names]
    pairs = [(name, f.db_value) for name, f in zip(names, fields, strict=True)]
    left, right = db.quote  # the engine's identifier quotes, '""' on both
    quote = lambda name: f"{left}{name}{right}"  # noqa: E731
    columns = ", ".join(quote(f.column_name) for f in fields)
    row_sql = "(" + ", ".join([db.param] * len(fields)) + ")"
    head = f"INSERT INTO {quote(model._meta.table_name)} ({columns}) VALUES "
    for batch in chunked(rows, BATCH):
        params = [convert(row[name]) for row in batch for name, convert in pairs]
        db.execute_sql(head + ", ".join([row_sql] * len(batch)), params)


def _update_many(model, updates: list[tuple[int, dict]]) -> None:
    """Apply (id, changes) pairs: one prepared UPDATE per set of changed columns, run with
    `executemany`, instead of building one peewee query per row."""
    groups: dict[tuple, list] = {}
    for row_id, changes in updates:
        groups.setdefault(tuple(sorted(changes)), []).append((row_id, changes))
    left, right = db.quote

    def quote(name):
        return f"{left}{name}{right}"

    for names, members in groups.items():
        fields = [model._meta.fields[name] for name in names]
        assignments = ", ".join(f"{quote(f.column_name)} = {db.param}" for f in fields)
        sql = (
            f"UPDATE {quote(model._meta.table_name)} SET {assignments} "
            f"WHERE {quote(model._meta.primary_key.column_name)} = {db.param}"
        )
        params = [
            [f.db_value(changes[f.name]) for f in fields] + [row_id] for row_id, changes in members
        ]
        cursor = db.cursor()
        for batch in chunked(params, BATCH * 10):
            cursor.executemany(sql, batch)


class _Stored:
    """A fetched row as a dict with attribute access (`invoice.currency`, `invoice.customer_id`),
    shaped like a model instance's `__data__` so `_changes` reads it the same way."""

    __slots__ = ("__data__",)

    def __init__(self, data: dict):
        self.__data__ = data

    def __getattr__(self, name):
        data = self.__data__
        if name in data:
            return data[name]
        if name.endswith("_id") and name[:-3] in data:
            return data[name[:-3]]
        raise AttributeError(name)


# --- kinds --------------------------------------------------------------------------------


class Kind:
    """How one CSV kind parses, checks and writes its rows."""

    name = ""
    columns: tuple[str, ...] = ()
    required: tuple[str, ...] = ()  # the header must have them and their cells must be filled

    def parse(self, cells: Cells) -> tuple[object, dict, dict]:
        """(natural key, field values, references) of one row; problems go to `cells`."""
        raise NotImplementedError

    def describe(self, key) -> str:
        """The natural key as a person reads it, for duplicate-row messages."""
        raise NotImplementedError

    def fetch(self, rows: list[Row], lock: bool = False) -> dict:
        """What the rows refer to and the rows they would update, fetched in bulk."""
        raise NotImplementedError

    def check(self, row: Row, state: dict) -> list[str]:
        """Problems of one row against the database."""
        return []

    def prepare(self, rows: list[Row], state: dict):
        """Slow work done before the write transaction opens (hashing codes)."""
        return None

    def write(self, rows: list[Row], state: dict, prepared, now) -> tuple[int, int]:
        """Write the rows inside the caller's transaction; returns (created, updated)."""
        raise NotImplementedError

    def _upsert(self, model, rows, state: dict, now, stamp=()) -> tuple[int, int]:
        """Insert rows whose key is new, update the changed ones: the shape most kinds share."""
        new, updates = [], []
        for row in rows:
            obj = state["existing"].get(row.key)
            if obj is None:
                new.append(self.new_values(row, state, now))
                continue
            changes = _changes(obj, row.values)
            if changes:
                for name in stamp:
                    changes[name] = now
                updates.append((obj.id, changes))
        _update_many(model, updates)
        _insert(model, new)
        return len(new), len(updates)

    def new_values(self, row: Row, state: dict, now) -> dict:
        """All the columns of a row to insert."""
        return dict(row.values)

    insert_fields: tuple[str, ...] = ()

    def _upsert_with(self, model, rows, state: dict, values_of, defaults: dict):
        """`_upsert` for kinds whose rows name other rows: `values_of(row)` resolves them; a
        new row gets every column of `insert_fields`, `defaults` filling what it leaves out."""
        new, updates = [], []
        for row in rows:
            values = values_of(row)
            existing = state["existing"].get(row.key)
            if existing is None:
                merged = {**defaults, **values}
                new.append({name: merged[name] for name in self.insert_fields})
            elif changes := _changes(existing, values):
                updates.append((existing.id, changes))
        _update_many(model, updates)
        _insert(model, new)
        return len(new), len(updates)


class Customers(Kind):
    name = "customers"
    columns = (
        "account_number",
        "name",
        "email",
        "phone",
        "address",
        "allow_self_registration",
        "portal_enabled",
    )
    required = ("account_number", "name")

    def parse(self, cells):
        values = {}
        key = cells.text("account_number", 50, required=True)
        _put(values, "name", cells.text("name", 255, required=True))
        _put(values, "email", cells.parsed("email", parse_email, ""))
        _put(values, "phone", cells.text("phone", 50))
        _put(values, "address", cells.text("address", one_line=False))
        _put(
            values,
            "allow_self_registration",
            cells.parsed("allow_self_registration", parse_yes_no, False),
        )
        _put(values, "portal_enabled", cells.parsed("portal_enabled", parse_yes_no, True))
        return key, values, {}

    def describe(self, key):
        return f"account_number {key}"

    def fetch(self, rows, lock=False):
        return {"existing": _customers(r.key for r in rows)}

    def new_values(self, row, state, now):
        return {"account_number": row.key, **row.values, "created_at": now, "updated_at": now}

    def write(self, rows, state, prepared, now):
        # Customer rows in id order before any is changed: the same order the invoice
        # import locks them in (`Customer.lock_versions`), so the two never deadlock.
        Customer.lock_versions(
            state["existing"][r.key].id for r in rows if r.key in state["existing"]
        )
        return self._upsert(Customer, rows, state, now, stamp=("updated_at",))


class Sites(Kind):
    name = "sites"
    columns = ("account_number", "site_code", "name", "address")
    required = ("account_number", "site_code", "name")

    def parse(self, cells):
        values = {}
        account = cells.text("account_number", 50, required=True)
        code = cells.text("site_code", 50, required=True)
        _put(values, "name", cells.text("name", 255, required=True))
        _put(values, "address", cells.text("address", one_line=False))
        return (account, code), values, {"account": account}

    def describe(self, key):
        return f"site {key[1]} of account {key[0]}"

    def fetch(self, rows, lock=False):
        customers = _customers(r.refs["account"] for r in rows)
        sites = _sites(c.id for c in customers.values())
        by_id = {c.id: c.account_number for c in customers.values()}
        existing = {(by_id[cid], code): site for (cid, code), site in sites.items()}
        return {"customers": customers, "existing": existing}

    def check(self, row, state):
        if row.refs["account"] not in state["customers"]:
            return [f"unknown account_number {row.refs['account']}"]
        return []

    def new_values(self, row, state, now):
        customer = state["customers"][row.refs["account"]]
        return {"customer": customer.id, "site_code": row.key[1], **row.values}

    def write(self, rows, state, prepared, now):
        return self._upsert(Site, rows, state, now)


class Contacts(Kind):
    name = "contacts"
    columns = ("account_number", "email", "first_name", "last_name", "phone", "site_code")
    required = ("account_number", "email")

    def parse(self, cells):
        values = {}
        account = cells.text("account_number", 50, required=True)
        email = cells.parsed("email", parse_email, "", required=True)
        _put(values, "first_name", cells.text("first_name", 100))
        _put(values, "last_name", cells.text("last_name", 100))
        _put(values, "phone", cells.text("phone", 50))
        site_code = cells.text("site_code", 50)
        return email, values, {"account": account, "site": site_code}

    def describe(self, key):
        return f"email {key}"

    def fetch(self, rows, lock=False):
        customers = _customers(r.refs["account"] for r in rows)
        # Select the whole customer: a partial one would blank the contact's customer_id.
        query = Contact.select(Contact, Customer).join(Customer)
        contacts = _in_chunks(Contact.email, (r.key for r in rows), query)
        return {
            "customers": customers,
            "sites": _sites(c.id for c in customers.values()),
            "existing": {c.email: c for c in contacts},
        }

    def check(self, row, state):
        account, site_code = row.refs["account"], row.refs["site"]
        customer = state["customers"].get(account)
        if customer is None:
            return [f"unknown account_number {account}"]
        problems = []
        if site_code and (customer.id, site_code) not in state["sites"]:
            problems.append(f"unknown site_code {site_code} for account {account}")
        existing = state["existing"].get(row.key)
        # Moving a contact would hand its portal login another company's data.
        if existing is not None and existing.customer_id != customer.id:
            other = existing.customer.account_number
            problems.append(f"{row.key} is a contact of account {other}, not {account}")
        return problems

    def _resolved(self, row, state) -> dict:
        values = dict(row.values)
        customer = state["customers"][row.refs["account"]]
        values["customer"] = customer.id
        site_code = row.refs["site"]
        if site_code is not ABSENT:
            values["site"] = state["sites"][(customer.id, site_code)].id if site_code else None
        return values

    def write(self, rows, state, prepared, now):
        new, updates = [], []
        fields = ("customer", "site", "email", "first_name", "last_name", "phone", "created_at")
        for row in rows:
            values = self._resolved(row, state)
            obj = state["existing"].get(row.key)
            if obj is None:
                defaults = {"site": None, "first_name": "", "last_name": "", "phone": ""}
                merged = {**defaults, **values, "email": row.key, "created_at": now}
                new.append({f: merged[f] for f in fields})
            elif changes := _changes(obj, values):
                updates.append((obj.id, changes))
        _update_many(Contact, updates)
        _insert(Contact, new)
        # The account class may say "invite every new contact": the back office's rule
        # (`access.on_contact_created`) holds for imported contacts too, in this transaction.
        auto = {c.id for c in state["customers"].values() if c.auto_invite and c.portal_enabled}
        emails = [values["email"] for values in new if values["customer"] in auto]
        if emails:
            from . import access

            query = Contact.select(Contact, Customer).join(Customer)
            access.invite_new_contacts(_in_chunks(Contact.email, emails, query))
        return len(new), len(updates)


class Products(Kind):
    name = "products"
    columns = ("item_code", "description", "unit", "price", "available_quantity")
    required = ("item_code", "description", "price")

    def parse(self, cells):
        values = {}
        key = cells.text("item_code", 50, required=True)
        _put(values, "description", cells.text("description", 255, required=True))
        unit = cells.text("unit", 20)
        _put(values, "unit", ABSENT if unit is ABSENT else unit or "ea")
        _put(values, "price_cents", cells.parsed("price", parse_money, 0, required=True))
        _put(values, "available_quantity", cells.parsed("available_quantity", parse_count, 0))
        return key, values, {}

    def describe(self, key):
        return f"item_code {key}"

    def fetch(self, rows, lock=False):
        products = _in_chunks(Product.item_code, (r.key for r in rows), Product.select())
        return {"existing": {p.item_code: p for p in products}}

    def new_values(self, row, state, now):
        return {"item_code": row.key, "unit": "ea", "available_quantity": 0, **row.values}

    def write(self, rows, state, prepared, now):
        return self._upsert(Product, rows, state, now)


class Prices(Kind):
    name = "prices"
    columns = ("account_number", "item_code", "price")
    required = ("account_number", "item_code", "price")

    def parse(self, cells):
        account = cells.text("account_number", 50, required=True)
        item = cells.text("item_code", 50, required=True)
        price = cells.parsed("price", parse_money, 0, required=True)
        return (account, item), {"price_cents": price}, {}

    def describe(self, key):
        return f"price of {key[1]} for account {key[0]}"

    def fetch(self, rows, lock=False):
        customers = _customers(r.key[0] for r in rows)
        products = _in_chunks(Product.item_code, (r.key[1] for r in rows), Product.select())
        products = {p.item_code: p for p in products}
        accounts = {c.id: c.account_number for c in customers.values()}
        items = {p.id: p.item_code for p in products.values()}
        query = CustomerPrice.select()
        prices = _in_chunks(CustomerPrice.customer, accounts, query)
        existing = {
            (accounts[p.customer_id], items[p.product_id]): p
            for p in prices
            if p.product_id in items
        }
        return {"customers": customers, "products": products, "existing": existing}

    def check(self, row, state):
        account, item = row.key
        problems = []
        if account not in state["customers"]:
            problems.append(f"unknown account_number {account}")
        if item not in state["products"]:
            problems.append(f"unknown item_code {item}")
        return problems

    def new_values(self, row, state, now):
        account, item = row.key
        return {
            "customer": state["customers"][account].id,
            "product": state["products"][item].id,
            **row.values,
        }

    def write(self, rows, state, prepared, now):
        return self._upsert(CustomerPrice, rows, state, now)


class Invoices(Kind):
    name = "invoices"
    columns = (
        "number",
        "account_number",
        "site_code",
        "issue_date",
        "due_date",
        "total",
        "amount_paid",
        "currency",
        "quick_pay_code",
        "discount_percent",
        "discount_days",
        "description",
    )
    required = ("number", "account_number", "issue_date", "due_date", "total")
    # The order of the INSERT columns.
    insert_fields = (
        "number",
        "customer",
        "site",
        "issue_date",
        "due_date",
        "total_cents",
        "amount_paid_cents",
        "currency",
        "discount_bp",
        "discount_days",
        "description",
        "quick_pay_hash",
        "quick_pay_sealed",
        "quick_pay_version",
        "created_at",
        "updated_at",
    )
    unread = ("created_at", "updated_at", "voided_at")
    defaults = {
        "amount_paid_cents": 0,
        "currency": "USD",
        "discount_bp": 0,
        "discount_days": 0,
        "description": "",
    }

    def parse(self, cells):
        values = {}
        number = cells.text("number", 50, required=True)
        account = cells.text("account_number", 50, required=True)
        site_code = cells.text("site_code", 50)
        issue = cells.parsed("issue_date", parse_date, None, required=True)
        due = cells.parsed("due_date", parse_date, None, required=True)
        total = cells.parsed("total", parse_money, None, required=True)
        paid = cells.parsed("amount_paid", parse_money, 0)
        bp = cells.parsed("discount_percent", parse_percent_bp, 0)
        days = cells.parsed("discount_days", parse_days, 0)
        code = cells.parsed("quick_pay_code", parse_quick_pay_code, "", show=False)
        _put(values, "issue_date", issue)
        _put(values, "due_date", due)
        _put(values, "total_cents", total)
        _put(values, "amount_paid_cents", paid)
        _put(values, "currency", cells.parsed("currency", parse_currency, "USD"))
        _put(values, "discount_bp", bp)
        _put(values, "discount_days", days)
        _put(values, "description", cells.text("description", one_line=False))
        if issue and due and due < issue:
            cells.problems.append("due_date is before issue_date")
        if total is not None and paid not in (ABSENT, None) and paid > total:
            cells.problems.append(
                f"amount_paid {to_decimal(paid)} is more than the total {to_decimal(total)}"
            )
        if bp not in (ABSENT, 0) and not cells.cells.get("discount_days"):
            cells.problems.append("discount_days is required when discount_percent is set")
        refs = {"account": account, "site": site_code, "code": code}
        return number, values, refs

    def describe(self, key):
        return f"invoice number {key}"

    def fetch(self, rows, lock=False):
        customers = _customers(r.refs["account"] for r in rows)
        # Lock the invoices an update touches, so a payment cannot slip in between the
        # check that the new total covers what is paid and the write.
        # Plain dicts without the timestamps: three times faster than model instances when
        # a re-import compares 100,000 invoices.
        fields = [f for f in Invoice._meta.sorted_fields if f.name not in self.unread]
        query = Invoice.select(*fields).dicts()
        invoices = _in_chunks(
            Invoice.number, (r.key for r in rows), locked(query) if lock else query
        )
        return {
            "customers": customers,
            "sites": _sites(c.id for c in customers.values()),
            "existing": {i["number"]: _Stored(i) for i in invoices},
        }

    def check(self, row, state):
        account, site_code = row.refs["account"], row.refs["site"]
        customer = state["customers"].get(account)
        if customer is None:
            return [f"unknown account_number {account}"]
        problems = []
        if site_code and (customer.id, site_code) not in state["sites"]:
            problems.append(f"unknown site_code {site_code} for account {account}")
        invoice = state["existing"].get(row.key)
        if invoice is None:
            return problems
        if invoice.customer_id != customer.id:
            owner = _account_of(invoice.customer_id, state["customers"])
            problems.append(f"invoice {row.key} belongs to account {owner}, not {account}")
        values = self._merged(row, invoice)
        settled = values["amount_paid_cents"] + invoice.discount_taken_cents
        if values["total_cents"] < settled:
            problems.append(
                f"total {to_decimal(values['total_cents'])} is less than the "
                f"{to_decimal(settled)} already paid or discounted on this invoice"
            )
        if values["currency"] != invoice.currency and (
            invoice.amount_paid_cents or invoice.discount_taken_cents
        ):
            problems.append(
                f"currency cannot change from {invoice.currency} once something is paid"
            )
        return problems

    def _merged(self, row, invoice) -> dict:
        """The field values an update would leave on `invoice` (codes aside)."""
        values = {**invoice.__data__, **row.values}
        values["amount_paid_cents"] = max(
            invoice.amount_paid_cents, row.values.get("amount_paid_cents", 0)
        )
        return values

    def _code_to_set(self, row, invoice, prepared: dict) -> str | None:
        """The code a row gives its invoice: a new invoice's, a changed one, or None (keep)."""
        code = row.refs["code"]
        if invoice is None:
            if code:
                return code
            ready = prepared.get(row.key)
            return ready[0] if ready else new_code()
        if code and not self._has_code(invoice, code):
            return code
        return None

    def _has_code(self, invoice, code: str) -> bool:
        current = unseal(invoice.quick_pay_sealed)
        if current is not None:
            return current == code
        return verify_code(invoice.quick_pay_hash, code)  # sealed under an old key

    def prepare(self, rows, state):
        """Generate and hash the quick-pay codes before the write lock is taken."""
        numbers, codes = [], []
        for row in rows:
            code = self._code_to_set(row, state["existing"].get(row.key), {})
            if code is not None:
                numbers.append(row.key)
                codes.append(code)
        hashes, sealed = hash_codes(codes, meanwhile=lambda: [seal(code) for code in codes])
        return {n: (c, h, s) for n, c, h, s in zip(numbers, codes, hashes, sealed, strict=True)}

    def _code_fields(self, row, invoice, prepared) -> dict:
        """The hash and sealed copy of the code this row sets, if it sets one."""
        code = self._code_to_set(row, invoice, prepared)
        if code is None:
            return {}
        ready = prepared.get(row.key)
        if ready is None or ready[0] != code:
            # What the database held changed since `prepare` (a concurrent import).
            ready = (code, hash_code(code), seal(code))
        return {"quick_pay_hash": ready[1], "quick_pay_sealed": ready[2]}

    def write(self, rows, state, prepared, now):
        new, updates, touched = [], [], set()
        for row in rows:
            customer = state["customers"][row.refs["account"]]
            touched.add(customer.id)
            values = dict(row.values)
            site_code = row.refs["site"]
            if site_code is not ABSENT:
                values["site"] = state["sites"][(customer.id, site_code)].id if site_code else None
            invoice = state["existing"].get(row.key)
            values.update(self._code_fields(row, invoice, prepared))
            if invoice is None:
                merged = {
                    **self.defaults,
                    "site": None,
                    **values,
                    "number": row.key,
                    "customer": customer.id,
                    "quick_pay_version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                new.append({f: merged[f] for f in self.insert_fields})
                continue
            touched.add(invoice.customer_id)
            values["amount_paid_cents"] = self._merged(row, invoice)["amount_paid_cents"]
            changes = _changes(invoice, values)
            if not changes:
                continue
            if "quick_pay_hash" in changes:
                # Signed pay links carry the version: the old code's links die with it.
                changes["quick_pay_version"] = invoice.quick_pay_version + 1
            changes["updated_at"] = now
            updates.append((invoice.id, changes))
        _update_many(Invoice, updates)
        _insert(Invoice, new)
        Customer.lock_versions(touched)
        return len(new), len(updates)


class Orders(Kind):
    """Sales orders as the ERP has them (their lines and shipments are kinds of their own);
    `quote_number` ties an order to the quote the customer accepted."""

    name = "orders"
    columns = (
        "number",
        "account_number",
        "site_code",
        "order_date",
        "promised_date",
        "customer_po",
        "status",
        "currency",
        "quote_number",
    )
    required = ("number", "account_number", "order_date")
    insert_fields = (
        "number",
        "customer",
        "site",
        "quote",
        "status",
        "order_date",
        "promised_date",
        "customer_po",
        "currency",
        "total_cents",
    )

    def parse(self, cells):
        values = {}
        key = cells.text("number", 30, required=True)
        account = cells.text("account_number", 50, required=True)
        _put(values, "order_date", cells.parsed("order_date", parse_date, None, required=True))
        _put(values, "promised_date", cells.parsed("promised_date", parse_date, None))
        _put(values, "customer_po", cells.text("customer_po", 50))
        _put(values, "status", cells.parsed("status", parse_order_status, "open"))
        _put(values, "currency", cells.parsed("currency", parse_currency, "USD"))
        refs = {
            "account": account,
            "site": cells.text("site_code", 50),
            "quote": cells.text("quote_number", 30),
        }
        return key, values, refs

    def describe(self, key):
        return f"order {key}"

    def fetch(self, rows, lock=False):
        customers = _customers(r.refs["account"] for r in rows)
        named = {r.refs["quote"] for r in rows if r.refs["quote"]}
        quotes = _in_chunks(
            Quote.number, named, Quote.select(Quote.id, Quote.number, Quote.customer)
        )
        orders = _in_chunks(SalesOrder.number, (r.key for r in rows), SalesOrder.select())
        return {
            "customers": customers,
            "sites": _sites(c.id for c in customers.values()),
            "quotes": {q.number: q for q in quotes},
            "existing": {o.number: o for o in orders},
        }

    def check(self, row, state):
        account, site_code, number = row.refs["account"], row.refs["site"], row.refs["quote"]
        customer = state["customers"].get(account)
        if customer is None:
            return [f"unknown account_number {account}"]
        problems = []
        if site_code and (customer.id, site_code) not in state["sites"]:
            problems.append(f"unknown site_code {site_code} for account {account}")
        quote = state["quotes"].get(number) if number else None
        if number and quote is None:
            problems.append(f"unknown quote_number {number}")
        elif quote is not None and quote.customer_id != customer.id:
            problems.append(f"quote {number} is not a quote of account {account}")
        existing = state["existing"].get(row.key)
        # Moving an order would show it to another company.
        if existing is not None and existing.customer_id != customer.id:
            other = _account_of(existing.customer_id, state["customers"])
            problems.append(f"order {row.key} is an order of account {other}, not {account}")
        return problems

    def _resolved(self, row, state) -> dict:
        values = dict(row.values)
        customer = state["customers"][row.refs["account"]]
        values["customer"] = customer.id
        site_code, number = row.refs["site"], row.refs["quote"]
        if site_code is not ABSENT:
            values["site"] = state["sites"][(customer.id, site_code)].id if site_code else None
        if number is not ABSENT:
            values["quote"] = state["quotes"][number].id if number else None
        return values

    def write(self, rows, state, prepared, now):
        defaults = {"site": None, "quote": None, "status": "open", "promised_date": None}
        defaults.update(customer_po="", currency="USD", total_cents=0)
        return self._upsert_with(
            SalesOrder,
            rows,
            state,
            lambda row: {**self._resolved(row, state), "number": row.key},
            defaults,
        )


class OrderLines(Kind):
    """The lines of orders already imported, by order number and line number; each order's
    total is recomputed from its lines."""

    name = "order_lines"
    columns = (
        "order_number",
        "line",
        "item_code",
        "description",
        "quantity",
        "shipped_quantity",
        "unit_price",
    )
    required = ("order_number", "line", "quantity")
    insert_fields = (
        "order",
        "position",
        "product",
        "description",
        "quantity_milli",
        "shipped_milli",
        "unit_price_cents",
        "amount_cents",
    )

    def parse(self, cells):
        values = {}
        number = cells.text("order_number", 30, required=True)
        position = cells.parsed("line", parse_count, 0, required=True)
        _put(values, "description", cells.text("description", 500))
        _put(values, "quantity_milli", cells.parsed("quantity", parse_quantity, 0, required=True))
        _put(values, "shipped_milli", cells.parsed("shipped_quantity", parse_quantity, 0))
        _put(values, "unit_price_cents", cells.parsed("unit_price", parse_money, 0))
        return (number, position), values, {"item": cells.text("item_code", 50)}

    def describe(self, key):
        return f"line {key[1]} of order {key[0]}"

    def fetch(self, rows, lock=False):
        orders = _in_chunks(SalesOrder.number, (r.key[0] for r in rows), SalesOrder.select())
        orders = {o.number: o for o in orders}
        numbers = {o.id: o.number for o in orders.values()}
        lines = _in_chunks(SalesOrderLine.order, numbers, SalesOrderLine.select())
        items = {r.refs["item"] for r in rows if r.refs["item"]}
        products = _in_chunks(Product.item_code, items, Product.select())
        return {
            "orders": orders,
            "products": {p.item_code: p for p in products},
            "existing": {(numbers[ln.order_id], ln.position): ln for ln in lines},
        }

    def check(self, row, state):
        problems = []
        if row.key[0] not in state["orders"]:
            problems.append(f"unknown order_number {row.key[0]} (import the orders first)")
        item = row.refs["item"]
        if item and item not in state["products"]:
            problems.append(f"unknown item_code {item}")
        if not item and not row.values.get("description"):
            problems.append("a line needs an item_code or a description")
        return problems

    def _values(self, row, state) -> dict:
        values = dict(row.values, order=state["orders"][row.key[0]].id, position=row.key[1])
        item = row.refs["item"]
        if item is not ABSENT:
            product = state["products"].get(item) if item else None
            values["product"] = product.id if product else None
            if product is not None and not values.get("description"):
                values["description"] = product.description
        existing = state["existing"].get(row.key)
        known = {"quantity_milli": 0, "unit_price_cents": 0}
        known.update(existing.__data__ if existing is not None else {})
        known.update(values)
        # Thousandths times cents, rounded half up to the cent.
        amount = known["quantity_milli"] * known["unit_price_cents"]
        values["amount_cents"] = (amount + 500) // 1000
        return values

    def write(self, rows, state, prepared, now):
        defaults = {"product": None, "description": "", "shipped_milli": 0, "unit_price_cents": 0}
        result = self._upsert_with(
            SalesOrderLine, rows, state, lambda row: self._values(row, state), defaults
        )
        touched = {state["orders"][r.key[0]].id for r in rows}
        total = SalesOrderLine.select(fn.COALESCE(fn.SUM(SalesOrderLine.amount_cents), 0)).where(
            SalesOrderLine.order == SalesOrder.id
        )
        for chunk in chunked(sorted(touched), LOOKUP_BATCH):
            SalesOrder.update(total_cents=total).where(SalesOrder.id.in_(chunk)).execute()
        return result


class Shipments(Kind):
    """Shipments of imported orders, by shipment number, with carrier tracking."""

    name = "shipments"
    columns = ("order_number", "number", "shipped_on", "carrier", "tracking_number", "delivered_on")
    required = ("order_number", "number", "shipped_on")
    insert_fields = (
        "order",
        "number",
        "status",
        "shipped_at",
        "delivered_at",
        "carrier",
        "tracking_number",
    )

    def parse(self, cells):
        values = {}
        key = cells.text("number", 30, required=True)
        order = cells.text("order_number", 30, required=True)
        _put(values, "shipped_at", cells.parsed("shipped_on", parse_day_start, None, required=True))
        delivered = cells.parsed("delivered_on", parse_day_start, None)
        _put(values, "delivered_at", delivered)
        if delivered is not ABSENT:
            values["status"] = "delivered" if delivered else "shipped"
        _put(values, "carrier", cells.text("carrier", 50))
        _put(values, "tracking_number", cells.text("tracking_number", 100))
        return key, values, {"order": order}

    def describe(self, key):
        return f"shipment {key}"

    def fetch(self, rows, lock=False):
        orders = _in_chunks(SalesOrder.number, (r.refs["order"] for r in rows), SalesOrder.select())
        shipments = _in_chunks(Shipment.number, (r.key for r in rows), Shipment.select())
        return {
            "orders": {o.number: o for o in orders},
            "existing": {s.number: s for s in shipments},
        }

    def check(self, row, state):
        order = state["orders"].get(row.refs["order"])
        if order is None:
            return [f"unknown order_number {row.refs['order']} (import the orders first)"]
        existing = state["existing"].get(row.key)
        if existing is not None and existing.order_id != order.id:
            return [f"shipment {row.key} belongs to another order"]
        return []

    def write(self, rows, state, prepared, now):
        defaults = {"status": "shipped", "delivered_at": None, "carrier": "", "tracking_number": ""}
        orders = state["orders"]
        fresh = [row for row in rows if row.key not in state["existing"]]
        result = self._upsert_with(
            Shipment,
            rows,
            state,
            lambda row: dict(row.values, order=orders[row.refs["order"]].id, number=row.key),
            defaults,
        )
        from . import orders as order_service  # it reaches the web layer for links

        order_service.announce_shipments(
            [
                (orders[row.refs["order"]], {**defaults, **row.values, "number": row.key})
                for row in fresh
            ],
            now,
        )
        return result


SPECS: dict[str, Kind] = {
    spec.name: spec
    for spec in (
        Customers(),
        Sites(),
        Contacts(),
        Invoices(),
        Products(),
        Prices(),
        Orders(),
        OrderLines(),
        Shipments(),
    )
}


# --- hashing in worker processes ----------------------------------------------------------


def hash_codes(codes: list[str], meanwhile: Callable = lambda: None) -> tuple[list, object]:
    """argon2id hashes of quick-pay codes, in order, and what `meanwhile()` returned.

    Many codes are hashed in worker processes (argon2 is CPU-bound, threads would share one
    core) while `meanwhile` runs here. The `forkserver` workers start from a clean process,
    not from a fork of a threaded web or test process.
    """
    if len(codes) <= PARALLEL_HASH_THRESHOLD:
        return [hash_code(code) for code in codes], meanwhile()
    workers = max(1, min(os.cpu_count() or 1, 8))
    chunksize = max(1, len(codes) // (workers * 16))
    context = multiprocessing.get_context("forkserver")
    other = ABSENT
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            hashes = pool.map(hash_code, codes, chunksize=chunksize)
            other = meanwhile()
            return list(hashes), other
    except (BrokenProcessPool, OSError):  # no worker processes on this host: hash inline
        other = meanwhile() if other is ABSENT else other
        return [hash_code(code) for code in codes], other


# --- the driver ---------------------------------------------------------------------------


def _text_stream(fh):
    """Lines of text for csv: binary files are decoded as UTF-8 one line at a time (a BOM is
    dropped), so a byte that is not UTF-8 is reported on its own line, not on the header."""
    if isinstance(fh, io.TextIOBase):
        return fh
    return _decoded_lines(fh)


def _decoded_lines(fh):
    first = True
    for raw in fh:
        if first:
            raw, first = raw.removeprefix(codecs.BOM_UTF8), False
        yield raw.decode("utf-8")


def _read_rows(spec: Kind, fh, problems: list[tuple[int, str]]) -> list[Row] | None:
    """Parse the header and every row; bad rows go to `problems`. None if the header is bad."""
    reader = csv.reader(_text_stream(fh))
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        problems.append((1, f"cannot read the header: {exc}"))
        return None
    if not header or not any(cell.strip() for cell in header):
        problems.append((1, "a header row is required: " + ", ".join(spec.columns)))
        return None
    names = [cell.strip().lstrip("\ufeff").lower() for cell in header]
    reason = _header_problem(spec, names)
    if reason:
        problems.append((1, reason))
        return None

    rows: list[Row] = []
    seen: dict[object, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append((line, f"cannot read this line: {exc}"))
            return rows
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue  # blank lines (and rows of empty cells) carry nothing
        if len(record) != len(names):
            problems.append((start, f"expected {len(names)} fields, found {len(record)}"))
            continue
        cells = Cells({name: cell.strip() for name, cell in zip(names, record, strict=True)})
        key, values, refs = spec.parse(cells)
        if cells.problems:
            problems.append((start, "; ".join(cells.problems)))
            continue
        if key in seen:
            problems.append(
                (start, f"{spec.describe(key)} appears again (first on line {seen[key]})")
            )
            continue
        seen[key] = start
        rows.append(Row(start, key, values, refs))
    return rows


def _header_problem(spec: Kind, names: list[str]) -> str:
    unknown = [n or "(blank)" for n in names if n not in spec.columns]
    if unknown:
        return (
            f"unknown column(s) {', '.join(unknown)}; "
            f"the columns for {spec.name} are {', '.join(spec.columns)}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return f"column(s) {', '.join(repeated)} appear more than once"
    missing = [c for c in spec.required if c not in names]
    if missing:
        return f"missing required column(s) {', '.join(missing)}"
    return ""


def _check(spec: Kind, rows: list[Row], state: dict, problems: list[tuple[int, str]]) -> None:
    for row in rows:
        found = spec.check(row, state)
        if found:
            problems.append((row.line, "; ".join(found)))


def import_csv(kind: str, fh) -> ImportResult:
    """Upsert one kind of record from a CSV file: every row is written, or none is.

    `fh` is a text or binary file object. Errors come back as `line N: reason` strings in
    `ImportResult.errors` (never raised), so the command line and the back office can
    show them as they are.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    spec = SPECS[kind]
    result = ImportResult(kind)
    problems: list[tuple[int, str]] = []
    rows = _read_rows(spec, fh, problems)
    if rows:
        # Check the references even when some rows are bad: report everything at once.
        state = spec.fetch(rows)
        _check(spec, rows, state, problems)
    if problems or not rows:
        result.errors = [f"line {line}: {reason}" for line, reason in sorted(problems)]
        return result

    prepared = spec.prepare(rows, state)
    now = utcnow()
    with write_txn():
        # Fetch again under the write lock: this is the state the rows are written against.
        state = spec.fetch(rows, lock=True)
        _check(spec, rows, state, problems)
        if problems:
            result.errors = [f"line {line}: {reason}" for line, reason in sorted(problems)]
            return result
        result.created, result.updated = spec.write(rows, state, prepared, now)
        result.unchanged = len(rows) - result.created - result.updated
        if result.created or result.updated:
            audit.record(f"import.{kind}", None, created=result.created, updated=result.updated)
    return result
