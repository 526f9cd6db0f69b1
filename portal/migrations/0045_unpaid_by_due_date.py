"""The back office's open and overdue invoice lists at scale (issue 15): a partial index of the
unpaid invoices by due date, so those lists read their page in due-date order from the
index. Newest issued first, the overdue list at a million invoices walked 360,000 recent
invoices (none of them overdue yet) to find 25: 900 ms. Its WHERE is `Invoice.unpaid()`'s,
as 0008's is."""

# A whole statement, no SQL built from strings (G4); SQLite and PostgreSQL both.
CREATE = (
    'CREATE INDEX IF NOT EXISTS "invoice_unpaid_due" ON "invoice" ("due_date", "id") '
    "WHERE (status = 'open') AND (((total_cents - amount_paid_cents) - discount_taken_cents) > 0)"
)
DROP = 'DROP INDEX IF EXISTS "invoice_unpaid_due"'


def up(migrator, db):
    db.execute_sql(CREATE)


def down(migrator, db):
    db.execute_sql(DROP)
