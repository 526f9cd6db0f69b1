"""Webhook events a payment provider sent, each handled once.

A provider (Stripe) delivers an event at least once, maybe twice, late or out of order; the
event id is kept when it has been handled, so a redelivery is answered without doing
anything again, and the back office can say when the last webhook arrived.
"""

from peewee import CharField, Model

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class ProviderEvent(Model):
        provider = CharField(max_length=30)
        event_id = CharField(max_length=255)
        type = CharField(max_length=100, default="")
        received_at = UtcDateTimeField(default=utcnow, index=True)

        class Meta:
            database = db
            table_name = "provider_event"
            indexes = ((("provider", "event_id"), True),)

    db.create_tables([ProviderEvent])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "provider_event"')
