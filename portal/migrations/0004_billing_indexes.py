"""Indexes for the customer billing area at 100k invoices: the invoice list by issue date
and the recent payments / payment history of one customer."""


def up(migrator, db):
    migrator.migrate(
        migrator.add_index("invoice", ("customer_id", "issue_date"), False),
        migrator.add_index("payment", ("customer_id", "received_at"), False),
    )
