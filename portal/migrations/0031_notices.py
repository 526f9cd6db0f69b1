"""Keeping people informed (issue 18): headers on outbox messages, a login's notice choices,
and the billing-contact flag.

- `outbox_message.headers`: extra headers as a JSON object (`List-Unsubscribe`,
  `List-Unsubscribe-Post`, a per-case `Reply-To`), fixed when the message is queued so every
  delivery carries the same ones; "" when none.
- `notice_choice`: a contact's choice for one topic of customer mail (new invoice, payment
  reminder, statement, quote published, order shipped, case updates), edited by its portal
  login; kept per contact so a billing contact without a login can unsubscribe too. No row
  means the default (on); a row records a change and who made it (the login, staff, or a
  one-click unsubscribe).
- `contact.billing`: whether the contact gets billing mail (reminders, statements, new
  invoices). Every existing contact starts as one, so nobody stops getting mail by upgrading.
"""

from peewee import BooleanField, CharField, ForeignKeyField, Model, TextField

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    contact_t = type(
        "contact",
        (Model,),
        {"Meta": type("Meta", (), {"database": db, "table_name": "contact"})},
    )

    class NoticeChoice(Model):
        contact = ForeignKeyField(contact_t, on_delete="CASCADE")
        topic = CharField(max_length=30)
        enabled = BooleanField()
        changed_by = CharField(max_length=20, default="login")
        changed_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "notice_choice"
            indexes = ((("contact", "topic"), True),)

    migrator.migrate(
        migrator.add_column("outbox_message", "headers", TextField(default="")),
        migrator.add_column("contact", "billing", BooleanField(default=True)),
    )
    db.create_tables([NoticeChoice])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "notice_choice"')
    migrator.migrate(
        migrator.drop_column("contact", "billing"),
        migrator.drop_column("outbox_message", "headers"),
    )
