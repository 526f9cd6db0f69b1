"""Indexes for the customer billing area at 100k invoices.

- invoice (customer, issue_date): the invoice list and recent invoices, newest first;
- invoice (customer, status, due_date, total, paid, discount) replaces (customer, status,
  due_date): the same prefix, and it covers the balance and aging aggregates, so the
  dashboard and the status tabs never read the table rows;
- payment (customer, received_at): recent payments and the payment history.
"""

COVERING = (
    "customer_id",
    "status",
    "due_date",
    "total_cents",
    "amount_paid_cents",
    "discount_taken_cents",
)


def up(migrator, db):
    migrator.migrate(
        migrator.add_index("invoice", ("customer_id", "issue_date"), False),
        migrator.add_index("invoice", COVERING, False),
        migrator.drop_index("invoice", "invoice_customer_id_status_due_date"),
        migrator.add_index("payment", ("customer_id", "received_at"), False),
    )
