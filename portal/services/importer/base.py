"""The machinery every import kind shares: rows and cells, bulk lookups and writes, `Kind`."""

import io
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from peewee import (
    BooleanField,
    CharField,
    DateField,
    ForeignKeyField,
    IntegerField,
    TextField,
    chunked,
)

from ...db import db, in_values, is_sqlite
from ...models import Customer, Site

# Rows per INSERT and values per IN (...): far below SQLite's bound-parameter limit.
BATCH = 500
# Keys per IN (...) lookup.
LOOKUP_BATCH = 2000


class _Absent:
    """The column is not in the file: leave the field alone. Falsy, like a blank cell."""

    def __bool__(self):
        return False

    def __repr__(self):
        return "ABSENT"

    def __reduce__(self):
        # Pickled by name, so rows read back from an import's spill file hold this very
        # object and `is ABSENT` stays true.
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
    # Rows staged to change stored ones (`staging`), and those a later check refused
    # ("line N: reason"): the file was accepted, these rows alone were not applied.
    staged: int = 0
    skipped: list[str] = field(default_factory=list)
    # Some staged changes were still waiting (another host or a payer held their rows)
    # when the import stopped waiting: the worker applies them; the counts are so far.
    applying: bool = False

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
            shown = f' "{clip(value)}"' if show else ""
            self.problems.append(f"{column}{shown} {exc}")
            return default


def clip(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def put(values: dict, name: str, value) -> None:
    if value is not ABSENT:
        values[name] = value


# --- lookups: one query per referenced table and chunk of keys, never one per row ---------


def in_chunks(field_, keys: Iterable, select) -> list:
    """Rows of `select` whose `field_` is in `keys`, fetched LOOKUP_BATCH keys per query
    (each IN list one fragment of plain parameters, `in_values`)."""
    rows = []
    for chunk in chunked(sorted(set(keys)), LOOKUP_BATCH):
        rows.extend(select.where(field_.in_(in_values(chunk))))
    return rows


# The tables an import's write wrote to (`tables_written`).
_written: ContextVar[set | None] = ContextVar("import_written", default=None)


@contextmanager
def tables_written():
    """Within, `insert_rows` and `update_rows` note the tables they write to, in the set
    this yields."""
    written: set[str] = set()
    token = _written.set(written)
    try:
        yield written
    finally:
        _written.reset(token)


def _note_written(model) -> None:
    written = _written.get()
    if written is not None:
        written.add(model._meta.table_name)


# Customers and sites already fetched in this pass of an import (`references_kept`).
_kept: ContextVar[dict | None] = ContextVar("import_references", default=None)


@contextmanager
def references_kept():
    """Within, customers and sites are fetched once each and then answered from memory.

    For one pass of an import of a kind that writes neither: a million invoices over a
    thousand customers named every customer in every chunk, and fetched them 600 times. A
    customer or site removed meanwhile is no different from one removed between the fetch
    and the write of a single chunk: its foreign key refuses the write.
    """
    token = _kept.set({"customers": {}, "sites": {}})
    try:
        yield
    finally:
        _kept.reset(token)


def bulk_billing() -> None:
    """In a transaction that writes many invoices: on PostgreSQL the billing-version trigger
    skips its per-row work (0039, 0042); the writer raises the touched customers' versions
    once, at its end (`raise_versions`)."""
    if not is_sqlite():
        db.execute_sql("SET LOCAL doorstep.bulk_billing = 'on'")


def raise_versions(touched: set[int]) -> None:
    """Last in a `bulk_billing` transaction, in id order: the touched customers' locks and
    their one version bump each, so a payer of theirs waits only for the commit."""
    Customer.lock_versions(touched)
    Customer.bump_versions(touched)


def customers_by_account(accounts: Iterable[str]) -> dict[str, Customer]:
    accounts = set(accounts)
    kept = _kept.get()
    known = kept["customers"] if kept is not None else {}
    missing = accounts - known.keys()
    if missing:
        query = Customer.select()
        found = {c.account_number: c for c in in_chunks(Customer.account_number, missing, query)}
        known.update((account, found.get(account)) for account in missing)
    return {a: known[a] for a in accounts if known[a] is not None}


def sites_by_code(customer_ids: Iterable[int]) -> dict[tuple[int, str], Site]:
    customer_ids = set(customer_ids)
    kept = _kept.get()
    known = kept["sites"] if kept is not None else {}
    missing = customer_ids - known.keys()
    if missing:
        known.update((customer_id, []) for customer_id in missing)
        for site in in_chunks(Site.customer, missing, Site.select()):
            known[site.customer_id].append(site)
    return {(s.customer_id, s.site_code): s for cid in customer_ids for s in known[cid]}


def customer_and_site(row: "Row", state: dict) -> tuple[Customer | None, list[str]]:
    """The customer a row names (`refs["account"]`) and the problems of its account number
    and site code (`refs["site"]`), for the kinds that belong to a customer and maybe a site."""
    account, site_code = row.refs["account"], row.refs["site"]
    customer = state["customers"].get(account)
    if customer is None:
        return None, [f"unknown account_number {account}"]
    if site_code and (customer.id, site_code) not in state["sites"]:
        return customer, [f"unknown site_code {site_code} for account {account}"]
    return customer, []


def resolve_customer_and_site(row: "Row", state: dict, values: dict) -> Customer:
    """Set the ids of a checked row's customer and (when its column is present) site in
    `values`; returns the customer."""
    customer = state["customers"][row.refs["account"]]
    values["customer"] = customer.id
    site_code = row.refs["site"]
    if site_code is not ABSENT:
        values["site"] = state["sites"][(customer.id, site_code)].id if site_code else None
    return customer


def account_of(customer_id: int, customers: dict[str, Customer]) -> str:
    """The account number of a customer id, from what was fetched or (rarely) one query."""
    for customer in customers.values():
        if customer.id == customer_id:
            return customer.account_number
    found = Customer.get_or_none(Customer.id == customer_id)
    return found.account_number if found else f"#{customer_id}"


def changes_of(obj, values: dict) -> dict:
    """The fields of `values` that differ from what `obj` holds (raw column values)."""
    return {name: value for name, value in values.items() if obj.__data__.get(name) != value}


def insert_rows(model, rows: list[dict]) -> None:
    """Insert many rows of one shape, BATCH per multi-row INSERT statement.

    The statement is written here, with each value converted by its field's `db_value`,
    because peewee's `insert_many` spends far longer building SQL for 100,000 rows than
    the database spends storing them.
    """
    if not rows:
        return
    _note_written(model)
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
    columns = ", ".join(quote(f.column_name) for f in fields)
    table = quote(model._meta.table_name)
    if not is_sqlite():
        _copy(table, columns, list(zip(names, fields, strict=True)), rows)
        return
    row_sql = "(" + ", ".join([db.param] * len(fields)) + ")"
    head = f"INSERT INTO {table} ({columns}) VALUES "
    for batch in chunked(rows, BATCH):
        params = [convert(row[name]) for row in batch for name, convert in pairs]
        db.execute_sql(head + ", ".join([row_sql] * len(batch)), params)


def _copy(table: str, columns: str, pairs: list, rows: list[dict]) -> None:
    """PostgreSQL's COPY FROM STDIN in its text format: one statement for the whole chunk,
    with none of the per-value work of binding parameters (with the rest of issue 15's
    work, a million new invoices in two minutes instead of five and a half)."""
    fields = [(name, _copy_text(field)) for name, field in pairs]
    out = io.StringIO()
    write = out.write
    for row in rows:
        write("\t".join([text(row[name]) for name, text in fields]))
        write("\n")
    out.seek(0)
    cursor = db.cursor()
    sql = f"COPY {table} ({columns}) FROM STDIN"
    pipeline = _pipeline.get()
    if pipeline is None:
        cursor.copy_expert(sql, out)
    else:
        pipeline.submit(cursor.copy_expert, sql, out)


# The open `copies_overlapped` pipeline, if any.
_pipeline: ContextVar["_CopyPipeline | None"] = ContextVar("import_copies", default=None)


class _CopyPipeline:
    """One COPY at a time on a thread of its own, on the caller's connection and
    transaction (the cursor is made by the caller; psycopg2 lets go of the GIL while the
    server works): while the server stores one chunk, Python builds the next."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-copy")
        self._running: Future | None = None

    def submit(self, copy, sql, data) -> None:
        self.wait()
        self._running = self._executor.submit(copy, sql, data)

    def wait(self) -> None:
        """Until the COPY in flight has ended; its error, if it failed, raised here."""
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)


@contextmanager
def copies_overlapped():
    """Within, on PostgreSQL, `insert_rows` hands each COPY to a thread and goes on, so
    the server storing one chunk (about 30 µs a row with the invoice table's indexes) and
    Python building the next overlap: a million new invoices 15 s sooner.

    Every other statement meanwhile waits for the COPY (psycopg2 runs one command at a time
    per connection); the last COPY is waited for before the block ends, and a COPY's error
    (a unique key, say) is raised as itself: at the next COPY, at the end, or in place of
    the error a later statement met in the transaction it left aborted."""
    if is_sqlite():
        yield
        return
    _guard_cursors(db.obj)
    pipeline = _CopyPipeline()
    token = _pipeline.set(pipeline)
    try:
        yield
        pipeline.wait()
    except Exception as error:
        try:
            pipeline.wait()
        except Exception as copy_error:  # the COPY's own error: the cause of what followed
            raise copy_error from error
        raise
    finally:
        _pipeline.reset(token)
        pipeline.close()  # waits for a COPY still in flight (an interrupt, say)


def _guard_cursors(database) -> None:
    """Make `database.cursor()` wait for the COPY in flight of the caller's own pipeline.

    psycopg2 deadlocks if a connection is asked for another command while a COPY reads
    its data on another thread, and every statement takes its cursor from `cursor()`.
    The pipeline is the caller's context's (`_pipeline` is a ContextVar): other threads
    (a web host's other requests, on connections of their own) pass straight through.
    Installed once per database object and never taken away, so imports in several
    threads cannot undo each other's guard."""
    if getattr(database, "_copy_guard", False):
        return
    make_cursor = database.cursor

    def cursor(*args, **kwargs):
        pipeline = _pipeline.get()
        if pipeline is not None:
            pipeline.wait()
        return make_cursor(*args, **kwargs)

    database.cursor = cursor
    database._copy_guard = True


# COPY's text format: backslash escapes for the characters that end a value or a row.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(field) -> Callable:
    """How one column's values are written for COPY, chosen once per column: text escaped,
    numbers and dates as `str` gives them, anything else through the field's `db_value`."""
    if isinstance(field, (CharField, TextField)):
        return lambda v: "\\N" if v is None else str(v).translate(_COPY_ESCAPES)
    if isinstance(field, BooleanField):
        return lambda v: "\\N" if v is None else ("t" if v else "f")
    if isinstance(field, (IntegerField, DateField)) and not isinstance(field, ForeignKeyField):
        return lambda v: "\\N" if v is None else str(v)  # int, date: their SQL text
    convert = field.db_value

    def other(value):
        if type(value) is int:  # a foreign key's id, as the import passes them
            return str(value)
        value = convert(value)
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, str):
            return value.translate(_COPY_ESCAPES)
        return str(value)  # a number, a date, a naive UTC datetime: no character to escape

    return other


def update_rows(model, updates: list[tuple[int, dict]]) -> None:
    """Apply (id, changes) pairs: for each set of changed columns, one `UPDATE ... FROM
    (VALUES ...)` per BATCH rows on PostgreSQL (half the time of as many one-row UPDATEs),
    one-row UPDATEs through `executemany` on SQLite; never one peewee query per row."""
    if updates:
        _note_written(model)
    groups: dict[tuple, list] = {}
    for row_id, changes in updates:
        groups.setdefault(tuple(sorted(changes)), []).append((row_id, changes))
    table = quote(model._meta.table_name)
    key = quote(model._meta.primary_key.column_name)
    for names, members in groups.items():
        fields = [model._meta.fields[name] for name in names]
        params = [
            [f.db_value(changes[f.name]) for f in fields] + [row_id] for row_id, changes in members
        ]
        cursor = db.cursor()
        if is_sqlite():
            assignments = ", ".join(f"{quote(f.column_name)} = ?" for f in fields)
            sql = f"UPDATE {table} SET {assignments} WHERE {key} = ?"
            for batch in chunked(params, BATCH * 10):
                cursor.executemany(sql, batch)
            continue
        # psycopg2 writes each value as a literal; the cast to the column's own type makes a
        # column of NULLs (typed text in VALUES) or a date string land as it would bound.
        # (psycopg2 is the `postgres` extra.)
        from psycopg2.extras import execute_values

        types = _column_types(model._meta.table_name)
        assignments = ", ".join(
            f"{quote(f.column_name)} = v.c{n}::{types[f.column_name]}" for n, f in enumerate(fields)
        )
        aliases = ", ".join(f"c{n}" for n in range(len(fields)))
        sql = (
            f"UPDATE {table} AS t SET {assignments} FROM (VALUES %s) AS v ({aliases}, k) "
            f"WHERE t.{key} = v.k"
        )
        execute_values(cursor, sql, params, page_size=BATCH)


# PostgreSQL's type of each column, by table (`update_rows`' casts); the schema is fixed
# while the portal runs.
_types: dict[str, dict[str, str]] = {}


def _column_types(table: str) -> dict[str, str]:
    if table not in _types:
        cursor = db.execute_sql(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (quote(table),),
        )
        _types[table] = dict(cursor.fetchall())
    return _types[table]


def quote(name: str) -> str:
    """An identifier from the models (a table, a column) quoted for SQL: `"name"` on both
    engines, a quote inside doubled."""
    return '"' + name.replace('"', '""') + '"'


class Stored:
    """A fetched row as a dict with attribute access (`invoice.currency`, `invoice.customer_id`),
    shaped like a model instance's `__data__` so `changes_of` reads it the same way."""

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
    # Customers and sites themselves: their import must see each chunk's own writes, so it
    # fetches references chunk by chunk instead of keeping them (`references_kept`).
    writes_references = False

    def parse(self, cells: Cells) -> tuple[object, dict, dict]:
        """(natural key, field values, references) of one row; problems go to `cells`."""
        raise NotImplementedError

    def describe(self, key) -> str:
        """The natural key as a person reads it, for duplicate-row messages."""
        raise NotImplementedError

    def fetch(self, rows: list[Row], lock: bool = False) -> dict:
        """What the rows refer to and the rows they would update, fetched in bulk."""
        raise NotImplementedError

    def references(self, rows: list[Row]) -> dict:
        """`fetch` for rows known to be new: what they refer to, and no stored rows."""
        return {**self.fetch(rows), "existing": {}}

    def check(self, row: Row, state: dict) -> list[str]:
        """Problems of one row against the database."""
        return []

    def prepare(self, rows: list[Row], state: dict, hash_codes: Callable):
        """Slow work done before the write transaction opens (hashing codes with
        `hash_codes`, the package's)."""
        return None

    # True when `moving` picks rows: the import judges each row against an unlocked
    # `fetch`, writes the new ones in its transaction and stages the ones that change a
    # stored row (`state["existing"]`, by key), which `staging` applies after the commit;
    # a row that would change nothing is neither.
    selective = False

    def moving(self, rows: list[Row], state: dict, prepared) -> list[Row]:
        """The rows that would write something, judged from an unlocked `fetch` (for a
        `selective` kind); each is checked again, under lock, where it is written."""
        return rows

    def write(self, rows: list[Row], state: dict, prepared, now) -> tuple[int, int]:
        """Write the rows inside the caller's transaction; returns (created, updated)."""
        raise NotImplementedError

    def to_stage(self, rows: list[Row], prepared) -> dict:
        """The changing rows of a `selective` kind, and their share of `prepared`, as JSON
        for `staging` (dates and ABSENT are tagged there); nothing secret in clear."""
        raise NotImplementedError

    def from_stage(self, data: dict) -> tuple[list[Row], object]:
        """`to_stage`'s rows and prepared work back."""
        raise NotImplementedError

    def _upsert(self, model, rows, state: dict, now, stamp=()) -> tuple[int, int]:
        """Insert rows whose key is new, update the changed ones: the shape most kinds share."""
        new, updates = [], []
        for row in rows:
            obj = state["existing"].get(row.key)
            if obj is None:
                new.append(self.new_values(row, state, now))
                continue
            changes = changes_of(obj, row.values)
            if changes:
                for name in stamp:
                    changes[name] = now
                updates.append((obj.id, changes))
        update_rows(model, updates)
        insert_rows(model, new)
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
            elif changes := changes_of(existing, values):
                updates.append((existing.id, changes))
        update_rows(model, updates)
        insert_rows(model, new)
        return len(new), len(updates)
