"""B2B ordering (issue 20): customers' carts, orders placed in the portal until the ERP has
them, quote acceptance as a signature, and products the ERP no longer sells.

- `product.active`: a withdrawn product stays (old lines name it) but cannot be ordered.
- `cart` / `cart_line`: one cart per login; a line per product, its quantity, and what a
  reorder flagged (the price the old document had).
- `web_order`: the portal's side of a `sales_order` placed here: its own number (kept after
  the ERP's import renames the order), who placed it from which cart (unique: one cart
  checkout makes one order), the office's accept/reject and the CSV export (one export each).
- `quote.published_digest` and `quote_signature`: the digest of a quote's lines and totals
  when it was published, and who signed which digest when, from which address.
"""

from peewee import BigIntegerField, BooleanField, CharField, DateField, ForeignKeyField, Model
from peewee import TextField

from portal.db import UtcDateTimeField, utcnow


def up(migrator, db):
    def table(name):
        class Meta:
            database = db
            table_name = name

        return type(name, (Model,), {"Meta": Meta})

    user_t, product_t, customer_t = table("portal_user"), table("product"), table("customer")
    order_t, staff_t, quote_t = table("sales_order"), table("staff_user"), table("quote")

    migrator.migrate(
        migrator.add_column("product", "active", BooleanField(default=True)),
        migrator.add_column("quote", "published_digest", CharField(max_length=64, null=True)),
    )

    class Cart(Model):
        portal_user = ForeignKeyField(user_t, unique=True, on_delete="CASCADE")
        customer = ForeignKeyField(customer_t, on_delete="CASCADE")
        last_order = ForeignKeyField(order_t, null=True, on_delete="SET NULL")
        updated_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "cart"

    class CartLine(Model):
        cart = ForeignKeyField(Cart, on_delete="CASCADE")
        product = ForeignKeyField(product_t, on_delete="CASCADE")
        quantity_milli = BigIntegerField()
        was_price_cents = BigIntegerField(null=True)
        added_at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "cart_line"
            indexes = ((("cart", "product"), True),)

    class WebOrder(Model):
        order = ForeignKeyField(order_t, unique=True, on_delete="CASCADE")
        number = CharField(max_length=30, unique=True)
        cart = ForeignKeyField(Cart, null=True, on_delete="SET NULL")
        checkout_key = CharField(max_length=64, unique=True)
        placed_by = ForeignKeyField(user_t, null=True, on_delete="SET NULL")
        placed_at = UtcDateTimeField(default=utcnow)
        requested_date = DateField(null=True)
        notes = TextField(default="")
        reviewed_by = ForeignKeyField(staff_t, null=True, on_delete="SET NULL")
        reviewed_at = UtcDateTimeField(null=True)
        reject_reason = TextField(default="")
        exported_at = UtcDateTimeField(null=True, index=True)
        export_batch = CharField(max_length=32, null=True, index=True)
        linked_at = UtcDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "web_order"

    class QuoteSignature(Model):
        quote = ForeignKeyField(quote_t, unique=True, on_delete="CASCADE")
        portal_user = ForeignKeyField(user_t, null=True, on_delete="SET NULL")
        full_name = CharField(max_length=200)
        email = CharField(max_length=320, default="")
        customer_po = CharField(max_length=50, default="")
        terms_accepted = BooleanField(default=True)
        digest = CharField(max_length=64)
        total_cents = BigIntegerField()
        currency = CharField(max_length=3, default="USD")
        signed_at = UtcDateTimeField(default=utcnow)
        ip = CharField(max_length=64, default="")
        user_agent = CharField(max_length=255, default="")

        class Meta:
            database = db
            table_name = "quote_signature"

    db.create_tables([Cart, CartLine, WebOrder, QuoteSignature])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "quote_signature"')
    db.execute_sql('DROP TABLE IF EXISTS "web_order"')
    db.execute_sql('DROP TABLE IF EXISTS "cart_line"')
    db.execute_sql('DROP TABLE IF EXISTS "cart"')
    migrator.migrate(
        migrator.drop_column("quote", "published_digest"),
        migrator.drop_column("product", "active"),
    )
