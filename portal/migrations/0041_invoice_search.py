"""Invoice search by description and PO (issue 19): the customer's purchase-order number on
the invoice (imported with it), and on PostgreSQL trigram indexes on the invoice's description
and PO so the staff search's "contains" keeps using an index, as 0029 does for the number.
The customer list needs none: it reads only the account's own invoices (the customer index).

The column is added by one plain ALTER with its default: Peewee's `add_column` would fill it
with an UPDATE of every invoice, and on SQLite rebuild the table, dropping its billing-version
triggers (0010)."""

from peewee import SqliteDatabase

INDEXES = (
    ("invoice_description_trgm", "description"),
    ("invoice_customer_po_trgm", "customer_po"),
)


def up(migrator, db):
    db.execute_sql(
        'ALTER TABLE "invoice" ADD COLUMN "customer_po" VARCHAR(50) NOT NULL DEFAULT \'\''
    )
    if isinstance(db, SqliteDatabase):
        return
    for name, column in INDEXES:
        db.execute_sql(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "invoice" USING gin ("{column}" gin_trgm_ops)'
        )


def down(migrator, db):
    if not isinstance(db, SqliteDatabase):
        for name, _ in INDEXES:
            db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    db.execute_sql('ALTER TABLE "invoice" DROP COLUMN "customer_po"')
