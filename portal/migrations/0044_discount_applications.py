"""The statement's early-payment discounts at scale (issue 15): a partial index of the
payment applications that carry a discount, by payment. The statement lists an account's
discounts by joining its payments to their applications; with no index to reach the few
with a discount, PostgreSQL read every application (30 ms at a million invoices, on every
statement page)."""

# A whole statement, no SQL built from strings (G4); SQLite and PostgreSQL both.
CREATE = (
    'CREATE INDEX IF NOT EXISTS "payment_application_discounts" '
    'ON "payment_application" ("payment_id") WHERE "discount_cents" > 0'
)
DROP = 'DROP INDEX IF EXISTS "payment_application_discounts"'


def up(migrator, db):
    db.execute_sql(CREATE)


def down(migrator, db):
    db.execute_sql(DROP)
