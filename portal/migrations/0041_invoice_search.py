"""Invoice search by description and PO (issue 19): the customer's purchase-order number on
the invoice (imported with it), and on PostgreSQL trigram indexes on the invoice's description
and PO so the staff search's "contains" keeps using an index, as 0029 does for the number.
The customer list needs none: it reads only the account's own invoices (the customer index).

The column is added by one plain ALTER with its default: Peewee's `add_column` would fill it
with an UPDATE of every invoice, and on SQLite rebuild the table, dropping its billing-version
triggers (0010)."""

from peewee import SqliteDatabase

# Whole statements, no SQL built from strings (G4).
CREATE_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "invoice_description_trgm" ON "invoice" '
    'USING gin ("description" gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "invoice_customer_po_trgm" ON "invoice" '
    'USING gin ("customer_po" gin_trgm_ops)',
)
DROP_INDEXES = (
    'DROP INDEX IF EXISTS "invoice_description_trgm"',
    'DROP INDEX IF EXISTS "invoice_customer_po_trgm"',
)


def up(migrator, db):
    db.execute_sql(
        'ALTER TABLE "invoice" ADD COLUMN "customer_po" VARCHAR(50) NOT NULL DEFAULT \'\''
    )
    if isinstance(db, SqliteDatabase):
        return
    for statement in CREATE_INDEXES:
        db.execute_sql(statement)


def down(migrator, db):
    if not isinstance(db, SqliteDatabase):
        for statement in DROP_INDEXES:
            db.execute_sql(statement)
    db.execute_sql('ALTER TABLE "invoice" DROP COLUMN "customer_po"')
