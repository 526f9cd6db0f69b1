"""Imports whose changes are still being applied (migration 0047, issue 15).

An import writes its new rows and *stages* the rows that change stored ones in one
transaction, then applies the staged changes in short transactions of their own, so a payer
of a changed invoice waits for one of those (a fraction of a second), never for the whole
file. A run is `applying` until its last staged piece is applied, by the import itself or,
if it was killed, by the worker (`importer.finish_pending`); `done` after.

Kept beside `models.py` like `models_reminders.py`; `ALL_IMPORT_MODELS` lists the tables for
schema checks.
"""

from peewee import CharField, ForeignKeyField, IntegerField, TextField

from .db import UtcDateTimeField, utcnow
from .models import BaseModel

STATES = ("applying", "done")


class ImportRun(BaseModel):
    """One accepted import file with changes to apply: what it did, and what it could not."""

    kind = CharField(max_length=20)
    state = CharField(max_length=10, default="applying", index=True)
    created = IntegerField(default=0)  # new rows, written when the file was accepted
    staged = IntegerField(default=0)  # rows staged to change a stored one
    updated = IntegerField(default=0)  # staged rows applied so far that changed something
    # "line N: reason" per staged row a later check refused (a payment came in meanwhile
    # that the new total no longer covers), one per line: applied nowhere, kept here.
    skipped = TextField(default="")
    started_at = UtcDateTimeField(default=utcnow)
    finished_at = UtcDateTimeField(null=True)

    class Meta:
        table_name = "import_run"

    @property
    def skipped_lines(self) -> list[str]:
        return self.skipped.splitlines()


class ImportChange(BaseModel):
    """A piece of a run's staged rows (`importer.staging.APPLY_ROWS` at most), as JSON;
    deleted in the transaction that applies it (or sets it aside, its lines reported as
    not applied), so no piece is ever applied twice."""

    run = ForeignKeyField(ImportRun, on_delete="CASCADE", index=True)
    rows = TextField()

    class Meta:
        table_name = "import_change"


ALL_IMPORT_MODELS = [ImportRun, ImportChange]
