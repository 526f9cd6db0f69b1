"""Staff two-step sign-in (checklist C5): the sealed TOTP secret and the last step used."""

from peewee import BigIntegerField, CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("staff_user", "totp_secret", CharField(max_length=255, null=True)),
        migrator.add_column("staff_user", "totp_last_step", BigIntegerField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("staff_user", "totp_secret"),
        migrator.drop_column("staff_user", "totp_last_step"),
    )
