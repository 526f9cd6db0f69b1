"""The statement at scale (issue 15): a payment application carries its account.

A statement's opening balance sums the account's whole history of payment applications. At
a million invoices those 10,000 rows lie scattered through 900,000, and the statement cost
twice what it did at 10,000 invoices (95 ms against 42), which under load slowed every other
page. Now each application names its customer (the payment's; a payment only ever pays its
own customer's invoices, `payments.py`), and two covering indexes hold an account's
applications and payments side by side, so the sums read two short index ranges.

`customer_id` is filled by the database on insert from the payment, whichever code writes
the row (the payments core, the seed, a bench's bulk insert): a BEFORE INSERT trigger on
PostgreSQL, an AFTER INSERT update on SQLite. Rows before this migration are filled here.
"""

from peewee import SqliteDatabase

# Whole statements, no SQL built from strings (G4).
ADD = (
    'ALTER TABLE "payment_application" ADD COLUMN "customer_id" INTEGER '
    'REFERENCES "customer" ("id") ON DELETE RESTRICT'
)
FILL = (
    'UPDATE "payment_application" SET "customer_id" = (SELECT "customer_id" FROM "payment" '
    'WHERE "payment"."id" = "payment_application"."payment_id")'
)
INDEXES = (
    'CREATE INDEX IF NOT EXISTS "payment_application_account" ON "payment_application" '
    '("customer_id", "invoice_id", "payment_id", "amount_cents", "discount_cents")',
    'CREATE INDEX IF NOT EXISTS "payment_account" ON "payment" '
    '("customer_id", "status", "id", "received_at")',
)
SQLITE_TRIGGER = (
    'CREATE TRIGGER IF NOT EXISTS "payment_application_customer" AFTER INSERT ON '
    '"payment_application" WHEN NEW."customer_id" IS NULL BEGIN '
    'UPDATE "payment_application" SET "customer_id" = (SELECT "customer_id" FROM "payment" '
    'WHERE "id" = NEW."payment_id") WHERE "id" = NEW."id"; END'
)
POSTGRES_FUNCTION = """CREATE OR REPLACE FUNCTION payment_application_customer() RETURNS trigger
LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.customer_id IS NULL THEN
            SELECT customer_id INTO NEW.customer_id FROM payment WHERE id = NEW.payment_id;
        END IF;
        RETURN NEW;
    END $$"""
POSTGRES_TRIGGER = (
    "CREATE TRIGGER payment_application_customer BEFORE INSERT ON payment_application "
    "FOR EACH ROW EXECUTE FUNCTION payment_application_customer()"
)


def up(migrator, db):
    db.execute_sql(ADD)
    db.execute_sql(FILL)
    for statement in INDEXES:
        db.execute_sql(statement)
    if isinstance(db, SqliteDatabase):
        db.execute_sql(SQLITE_TRIGGER)
    else:
        db.execute_sql(POSTGRES_FUNCTION)
        db.execute_sql(POSTGRES_TRIGGER)


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        db.execute_sql('DROP TRIGGER IF EXISTS "payment_application_customer"')
    else:
        db.execute_sql("DROP TRIGGER IF EXISTS payment_application_customer ON payment_application")
        db.execute_sql("DROP FUNCTION IF EXISTS payment_application_customer()")
    db.execute_sql('DROP INDEX IF EXISTS "payment_application_account"')
    db.execute_sql('DROP INDEX IF EXISTS "payment_account"')
    db.execute_sql('ALTER TABLE "payment_application" DROP COLUMN "customer_id"')
