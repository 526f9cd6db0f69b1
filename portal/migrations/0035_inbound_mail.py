"""Replies by email (issue 18): one row per reply the inbound SMTP process took.

- `inbound_mail`: the message's key (its Message-ID, or a digest of the message when it has
  none) is unique, so a mail server that hands the same reply over twice (a lost answer to
  DATA, a retry after a timeout) adds it to the case once. `status` is `processing` while
  the reply is being added and `done` once it is on the case (`case_message`).
"""

from peewee import CharField, ForeignKeyField, Model

from portal.db import UtcDateTimeField, utcnow


def _table(db, name):
    return type(name, (Model,), {"Meta": type("Meta", (), {"database": db, "table_name": name})})


def up(migrator, db):
    class InboundMail(Model):
        message_key = CharField(max_length=255, unique=True)
        case = ForeignKeyField(_table(db, "case"), on_delete="CASCADE")
        contact = ForeignKeyField(_table(db, "contact"), null=True, on_delete="SET NULL")
        case_message = ForeignKeyField(_table(db, "case_message"), null=True, on_delete="SET NULL")
        status = CharField(max_length=10, default="processing")
        received_at = UtcDateTimeField(default=utcnow)
        done_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "inbound_mail"

    db.create_tables([InboundMail])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "inbound_mail"')
