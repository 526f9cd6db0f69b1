"""A bulk import raises its customers' billing versions itself, once, at its end (issue 15).

On PostgreSQL the invoice trigger (0010, 0030) runs at COMMIT for every row a transaction
wrote, and the customers' rows stay locked from the first bump to the end of the commit. For
a million-row import that is seconds of commit during which any payer of those customers
waits. Now a transaction that sets `doorstep.bulk_billing = 'on'` (`SET LOCAL`, so it ends
with the transaction) skips the per-row work, and the import raises each touched customer's
version with one UPDATE just before it commits (`Customer.bump_versions`). Nothing else sets
the flag, so every other write keeps the trigger. SQLite, one writer at a time, keeps its
plain per-row trigger.
"""

from peewee import SqliteDatabase

BODY = """
        IF TG_OP <> 'INSERT' THEN
            UPDATE customer SET billing_version = billing_version + 1,
                                billing_version_txid = txid_current()
            WHERE id = OLD.customer_id
              AND billing_version_txid IS DISTINCT FROM txid_current();
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.customer_id <> OLD.customer_id) THEN
            UPDATE customer SET billing_version = billing_version + 1,
                                billing_version_txid = txid_current()
            WHERE id = NEW.customer_id
              AND billing_version_txid IS DISTINCT FROM txid_current();
        END IF;
        RETURN NULL;"""

BULK = f"""CREATE OR REPLACE FUNCTION bump_billing_version() RETURNS trigger
LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('doorstep.bulk_billing', true) = 'on' THEN
            RETURN NULL;
        END IF;{BODY}
    END $$"""

PER_ROW = f"""CREATE OR REPLACE FUNCTION bump_billing_version() RETURNS trigger
LANGUAGE plpgsql AS $$
    BEGIN{BODY}
    END $$"""


def up(migrator, db):
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(BULK)


def down(migrator, db):
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(PER_ROW)
