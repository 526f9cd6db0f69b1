"""One open payment attempt per invoice, enforced by the database (checklist I3).

The payments service already locks the invoice rows before it opens an attempt; this
partial unique index is the backstop if code ever forgets. It was meant to ship with 0001,
where it sat in `down()` by mistake, so no database has it yet. Partial indexes work the
same on SQLite and PostgreSQL.
"""


def up(migrator, db):
    db.execute_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS payment_attempt_item_one_open "
        "ON payment_attempt_item (invoice_id) WHERE is_open"
    )


def down(migrator, db):
    db.execute_sql("DROP INDEX IF EXISTS payment_attempt_item_one_open")
