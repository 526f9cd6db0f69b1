"""Cases (issue 17): attachments, categories and one case per submitted form.

- `attachment`: a file on something a customer or staff sent, named by its owner (kind and
  id: `case_message` today; RFQs and quotes can use the same table); `key` is the random
  name in URLs and in storage (the instance folder or S3-compatible object storage), with
  `thumb_key` for an image's thumbnail. Images are stored re-encoded, without metadata.
- `case.category`: one of the categories staff list in settings ("" when none).
- `case.request_key`: the token rendered into the form that opened the case; unique, so a
  double click on "Question this invoice" opens one case.
"""

from peewee import BigIntegerField, CharField, ForeignKeyField, IntegerField, Model

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    class Meta:
        database = db

    migrator.migrate(
        migrator.add_column("case", "category", CharField(max_length=60, default="")),
        migrator.add_column("case", "request_key", CharField(max_length=64, null=True)),
        migrator.add_index("case", ("request_key",), True),
        migrator.add_index("case", ("category",), False),
    )

    staff_t = type(
        "staff_user",
        (Model,),
        {"Meta": type("Meta", (), {"database": db, "table_name": "staff_user"})},
    )
    user_t = type(
        "portal_user",
        (Model,),
        {"Meta": type("Meta", (), {"database": db, "table_name": "portal_user"})},
    )

    class Attachment(Model):
        key = CharField(max_length=64, unique=True)
        owner_kind = CharField(max_length=20)
        owner_id = BigIntegerField()
        filename = CharField(max_length=255)
        content_type = CharField(max_length=100)
        size = BigIntegerField()
        thumb_key = CharField(max_length=64, null=True)
        width = IntegerField(null=True)
        height = IntegerField(null=True)
        portal_user = ForeignKeyField(user_t, null=True, on_delete="SET NULL")
        staff_user = ForeignKeyField(staff_t, null=True, on_delete="SET NULL")
        created_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "attachment"
            indexes = ((("owner_kind", "owner_id"), False),)

    db.create_tables([Attachment])
