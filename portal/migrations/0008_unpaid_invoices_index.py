"""A partial index of the invoices with something left to pay.

Most of an established account's invoices are paid, yet they keep status `open` (paid is
a balance of zero, not a status), so the dashboard's aging aggregate and the list's open
and overdue tabs read every invoice of the account through the 0004 covering index. This
index holds only the unpaid ones, with the same columns: SQLite and PostgreSQL pick it for
`Invoice.unpaid()` queries (their WHERE implies the index's), and those queries then read
a few hundred index entries instead of the whole account. Its WHERE must stay the same
expression as `Invoice.unpaid()`.
"""

COLUMNS = "customer_id, status, due_date, total_cents, amount_paid_cents, discount_taken_cents"
WHERE = "(status = 'open') AND (((total_cents - amount_paid_cents) - discount_taken_cents) > 0)"


def up(migrator, db):
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS invoice_unpaid ON invoice (" + COLUMNS + ") WHERE " + WHERE
    )


def down(migrator, db):
    db.execute_sql("DROP INDEX IF EXISTS invoice_unpaid")
