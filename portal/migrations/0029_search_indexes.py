"""Staff search at scale (issue 15): on PostgreSQL, trigram indexes (pg_trgm, a trusted
extension the database owner may create) let "number contains …" and "name contains …" use an
index instead of reading every invoice; at 1M invoices a search for one number went from
seconds to milliseconds. SQLite keeps the plain scan of the small `number` index (see README
"Speed" for the figures); its FTS5 would need a trigger on every imported invoice."""

from peewee import SqliteDatabase


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "invoice_number_trgm" ON "invoice" '
        'USING gin ("number" gin_trgm_ops)'
    )
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "customer_name_trgm" ON "customer" '
        'USING gin ("name" gin_trgm_ops)'
    )


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    db.execute_sql('DROP INDEX IF EXISTS "invoice_number_trgm"')
    db.execute_sql('DROP INDEX IF EXISTS "customer_name_trgm"')
