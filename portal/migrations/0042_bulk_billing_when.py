"""A bulk import queues no trigger event per row (issue 15).

0039 made the invoice trigger's function return at once in a transaction that set
`doorstep.bulk_billing = 'on'`. The trigger is a deferred constraint trigger, so PostgreSQL
still queued one event per row written and ran the function for each at COMMIT: a million
calls that did nothing, in the commit a payer waits for. A `WHEN` condition is evaluated as
the row is written, and an event whose condition is false is never queued (PostgreSQL's
CREATE TRIGGER: "In AFTER triggers, the WHEN condition is evaluated just after the row
update occurs, and it determines whether an event is queued"). The function keeps its own
check, so the trigger is right with either definition. SQLite keeps its per-row triggers.
"""

from peewee import SqliteDatabase

# Whole statements, no SQL built from strings (G4). The columns are the ones 0010 watches:
# what a customer's billing figures are made of.
DROP = "DROP TRIGGER IF EXISTS invoice_version ON invoice"
WITH_WHEN = (
    "CREATE CONSTRAINT TRIGGER invoice_version AFTER INSERT OR UPDATE OF status, due_date, "
    "total_cents, amount_paid_cents, discount_taken_cents, customer_id, site_id OR DELETE "
    "ON invoice DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    "WHEN (current_setting('doorstep.bulk_billing', true) IS DISTINCT FROM 'on') "
    "EXECUTE FUNCTION bump_billing_version()"
)
WITHOUT_WHEN = (
    "CREATE CONSTRAINT TRIGGER invoice_version AFTER INSERT OR UPDATE OF status, due_date, "
    "total_cents, amount_paid_cents, discount_taken_cents, customer_id, site_id OR DELETE "
    "ON invoice DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    "EXECUTE FUNCTION bump_billing_version()"
)


def up(migrator, db):
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(DROP)
        db.execute_sql(WITH_WHEN)


def down(migrator, db):
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(DROP)
        db.execute_sql(WITHOUT_WHEN)
