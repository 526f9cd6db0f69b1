"""The customer's purchase-order number, given when accepting a quote (it goes to the office
with the acceptance, so the order entered in the ERP carries it)."""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("quote", "customer_po", CharField(max_length=50, default=""))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("quote", "customer_po"))
