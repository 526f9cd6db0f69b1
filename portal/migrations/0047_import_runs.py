"""Staged import changes (issue 15): an import writes its new rows and stages its changes to
stored rows in one transaction, then applies the changes in short transactions, so a payer
of a changed invoice never waits for a whole file (16 s for 142,857 changes before).
See `portal/models_imports.py`."""

from peewee import CharField, ForeignKeyField, IntegerField, Model, TextField

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class ImportRun(Model):
        kind = CharField(max_length=20)
        state = CharField(max_length=10, default="applying", index=True)
        created = IntegerField(default=0)
        staged = IntegerField(default=0)
        updated = IntegerField(default=0)
        skipped = TextField(default="")
        started_at = UtcDateTimeField(default=utcnow)
        finished_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "import_run"

    class ImportChange(Model):
        run = ForeignKeyField(ImportRun, on_delete="CASCADE", index=True)
        rows = TextField()

        class Meta:
            database = db
            table_name = "import_change"

    db.create_tables([ImportRun, ImportChange])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "import_change"')
    db.execute_sql('DROP TABLE IF EXISTS "import_run"')
