"""CSV import kind: products, by item code."""

from ...models import Product
from .base import ABSENT, Kind, in_chunks, put
from .parsers import parse_count, parse_money, parse_yes_no


class Products(Kind):
    name = "products"
    columns = ("item_code", "description", "unit", "price", "available_quantity", "active")
    required = ("item_code", "description", "price")

    def parse(self, cells):
        values = {}
        key = cells.text("item_code", 50, required=True)
        put(values, "description", cells.text("description", 255, required=True))
        unit = cells.text("unit", 20)
        put(values, "unit", ABSENT if unit is ABSENT else unit or "ea")
        put(values, "price_cents", cells.parsed("price", parse_money, 0, required=True))
        put(values, "available_quantity", cells.parsed("available_quantity", parse_count, 0))
        # "no" withdraws a product from the catalog (carts holding it cannot check out).
        put(values, "active", cells.parsed("active", parse_yes_no, True))
        return key, values, {}

    def describe(self, key):
        return f"item_code {key}"

    def fetch(self, rows, lock=False):
        products = in_chunks(Product.item_code, (r.key for r in rows), Product.select())
        return {"existing": {p.item_code: p for p in products}}

    def new_values(self, row, state, now):
        return {
            "item_code": row.key,
            "unit": "ea",
            "available_quantity": 0,
            "active": True,
            **row.values,
        }

    def write(self, rows, state, prepared, now):
        return self._upsert(Product, rows, state, now)
