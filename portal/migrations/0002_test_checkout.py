"""The test-checkout simulator's session table; who started each payment attempt."""

from peewee import BigIntegerField, CharField, DateTimeField, Model


def up(migrator, db):
    class TestCheckoutSession(Model):
        session_id = CharField(max_length=40, unique=True)
        attempt_key = CharField(max_length=36, unique=True)
        amount_cents = BigIntegerField()
        currency = CharField(max_length=3)
        merchant = CharField(default="")
        status = CharField(max_length=10, default="open")
        payment_ref = CharField(max_length=40, null=True, unique=True)
        created_at = DateTimeField()
        completed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "test_checkout_session"

    db.create_tables([TestCheckoutSession])
    migrator.migrate(
        migrator.add_column("payment_attempt", "owner", CharField(max_length=64, default=""))
    )
