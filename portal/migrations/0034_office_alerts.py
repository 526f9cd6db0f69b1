"""Office alerts (issue 18): staff logins' alert choices, digest entries and digests.

- `alert_choice`: how a staff login gets one kind of alert (`now`, `digest`, `none`); no row
  means the login's default (services.alerts.default_delivery).
- `alert_digest`: one row per staff login and business day a digest went out; its unique
  index is the "never twice" marker, also when two workers run at once.
- `alert_entry`: an alert waiting for a login's digest, or the digest (`digest_id`) that
  carried it.
"""

from peewee import CharField, DateField, ForeignKeyField, IntegerField, Model, TextField

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    staff_t = type(
        "staff_user",
        (Model,),
        {"Meta": type("Meta", (), {"database": db, "table_name": "staff_user"})},
    )

    class AlertChoice(Model):
        staff_user = ForeignKeyField(staff_t, on_delete="CASCADE")
        kind = CharField(max_length=30)
        delivery = CharField(max_length=10)
        changed_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "alert_choice"
            indexes = ((("staff_user", "kind"), True),)

    class AlertDigest(Model):
        staff_user = ForeignKeyField(staff_t, on_delete="CASCADE")
        day = DateField()
        entries = IntegerField(default=0)
        sent_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "alert_digest"
            indexes = ((("staff_user", "day"), True),)

    class AlertEntry(Model):
        staff_user = ForeignKeyField(staff_t, on_delete="CASCADE")
        kind = CharField(max_length=30)
        text = TextField()
        link = TextField(default="")
        created_at = UtcDateTimeField(default=utcnow)
        digest = ForeignKeyField(AlertDigest, null=True, on_delete="SET NULL")

        class Meta:
            database = db
            table_name = "alert_entry"
            indexes = ((("digest", "created_at"), False),)

    db.create_tables([AlertChoice, AlertDigest, AlertEntry])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "alert_entry"')
    db.execute_sql('DROP TABLE IF EXISTS "alert_digest"')
    db.execute_sql('DROP TABLE IF EXISTS "alert_choice"')
