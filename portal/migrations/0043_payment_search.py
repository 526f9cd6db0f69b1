"""Staff payment search at scale (issue 15): on PostgreSQL, trigram indexes on what the
payment search matches (receipt number, provider reference, payer email and name), so
"contains" uses an index instead of reading every payment; the customer part of the search
finds the customers first and their payments through the (customer, received_at) index
(`backoffice.search_payments`). SQLite keeps the scan (see README "Speed")."""

from peewee import SqliteDatabase

# Whole statements, no SQL built from strings (G4).
CREATE_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "payment_receipt_number_trgm" ON "payment" '
    'USING gin ("receipt_number" gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "payment_provider_reference_trgm" ON "payment" '
    'USING gin ("provider_reference" gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "payment_payer_email_trgm" ON "payment" '
    'USING gin ("payer_email" gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "payment_payer_name_trgm" ON "payment" '
    'USING gin ("payer_name" gin_trgm_ops)',
)
DROP_INDEXES = (
    'DROP INDEX IF EXISTS "payment_receipt_number_trgm"',
    'DROP INDEX IF EXISTS "payment_provider_reference_trgm"',
    'DROP INDEX IF EXISTS "payment_payer_email_trgm"',
    'DROP INDEX IF EXISTS "payment_payer_name_trgm"',
)


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    for statement in CREATE_INDEXES:
        db.execute_sql(statement)


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    for statement in DROP_INDEXES:
        db.execute_sql(statement)
