"""A per-customer version of everything the billing aggregates read.

`customer.billing_version` goes up whenever one of the customer's invoices is inserted,
deleted, or changes a column the balance, aging or status tabs depend on. The triggers are
in the database, so no write path (the payments core, the back office, a CSV import, a
hand-written SQL fix) can forget it; `services/billing` caches the aggregates per
(customer, version, business date, site scope) and a cached value can never outlive a
change.

SQLite runs one writer at a time, so a plain AFTER row trigger is exact. On PostgreSQL the
bump is a deferred constraint trigger: it runs at commit, after the transaction has taken
every other lock it needs, so a payment holding invoice locks can never wait for a
customer row held by a transaction that then waits for those invoices (no deadlock cycle
through the customer row); and the row lock on the customer orders the bumps the way the
commits are ordered, which a timestamp or sequence read from the invoices would not. A
transaction that changes invoices of several customers locks them in id order just before
it commits (`Customer.lock_versions`), so two of them queue instead of deadlocking.
"""

from peewee import IntegerField, SqliteDatabase

# Every column the aggregates read or filter on (site_id: a site-limited login's scope).
WATCHED = (
    "status, due_date, total_cents, amount_paid_cents, discount_taken_cents, customer_id, site_id"
)
BUMP = "UPDATE customer SET billing_version = billing_version + 1 WHERE id = {}"

SQLITE = [
    f"CREATE TRIGGER invoice_version_insert AFTER INSERT ON invoice BEGIN "
    f"{BUMP.format('NEW.customer_id')}; END",
    f"CREATE TRIGGER invoice_version_update AFTER UPDATE OF {WATCHED} ON invoice BEGIN "
    f"{BUMP.format('OLD.customer_id')}; "
    f"{BUMP.format('NEW.customer_id')} AND NEW.customer_id <> OLD.customer_id; END",
    f"CREATE TRIGGER invoice_version_delete AFTER DELETE ON invoice BEGIN "
    f"{BUMP.format('OLD.customer_id')}; END",
]

POSTGRES = [
    f"""CREATE FUNCTION bump_billing_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN {BUMP.format("OLD.customer_id")}; END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.customer_id <> OLD.customer_id) THEN
            {BUMP.format("NEW.customer_id")};
        END IF;
        RETURN NULL;
    END $$""",
    f"CREATE CONSTRAINT TRIGGER invoice_version AFTER INSERT OR UPDATE OF {WATCHED} OR DELETE "
    "ON invoice DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    "EXECUTE FUNCTION bump_billing_version()",
]


def _is_sqlite(db) -> bool:
    return isinstance(db, SqliteDatabase)


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("customer", "billing_version", IntegerField(default=0)),
    )
    for statement in SQLITE if _is_sqlite(db) else POSTGRES:
        db.execute_sql(statement)


def down(migrator, db):
    if _is_sqlite(db):
        for statement in (
            "DROP TRIGGER IF EXISTS invoice_version_insert",
            "DROP TRIGGER IF EXISTS invoice_version_update",
            "DROP TRIGGER IF EXISTS invoice_version_delete",
        ):
            db.execute_sql(statement)
    else:
        db.execute_sql("DROP TRIGGER IF EXISTS invoice_version ON invoice")
        db.execute_sql("DROP FUNCTION IF EXISTS bump_billing_version()")
    migrator.migrate(migrator.drop_column("customer", "billing_version"))
