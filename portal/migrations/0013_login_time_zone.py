"""A customer login's own time zone (an IANA name); empty means the business's."""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("portal_user", "time_zone", CharField(max_length=64, default=""))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("portal_user", "time_zone"))
