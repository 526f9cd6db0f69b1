"""CSV import kind: the lines of imported sales orders, by (order number, line)."""

from peewee import chunked, fn

from ...models import Product, SalesOrder, SalesOrderLine
from .base import ABSENT, LOOKUP_BATCH, Kind, in_chunks, put
from .parsers import parse_count, parse_money, parse_quantity


class OrderLines(Kind):
    """The lines of orders already imported, by order number and line number; each order's
    total is recomputed from its lines."""

    name = "order_lines"
    columns = (
        "order_number",
        "line",
        "item_code",
        "description",
        "quantity",
        "shipped_quantity",
        "unit_price",
    )
    required = ("order_number", "line", "quantity")
    insert_fields = (
        "order",
        "position",
        "product",
        "description",
        "quantity_milli",
        "shipped_milli",
        "unit_price_cents",
        "amount_cents",
    )

    def parse(self, cells):
        values = {}
        number = cells.text("order_number", 30, required=True)
        position = cells.parsed("line", parse_count, 0, required=True)
        put(values, "description", cells.text("description", 500))
        put(values, "quantity_milli", cells.parsed("quantity", parse_quantity, 0, required=True))
        put(values, "shipped_milli", cells.parsed("shipped_quantity", parse_quantity, 0))
        put(values, "unit_price_cents", cells.parsed("unit_price", parse_money, 0))
        return (number, position), values, {"item": cells.text("item_code", 50)}

    def describe(self, key):
        return f"line {key[1]} of order {key[0]}"

    def fetch(self, rows, lock=False):
        orders = in_chunks(SalesOrder.number, (r.key[0] for r in rows), SalesOrder.select())
        orders = {o.number: o for o in orders}
        numbers = {o.id: o.number for o in orders.values()}
        lines = in_chunks(SalesOrderLine.order, numbers, SalesOrderLine.select())
        items = {r.refs["item"] for r in rows if r.refs["item"]}
        products = in_chunks(Product.item_code, items, Product.select())
        return {
            "orders": orders,
            "products": {p.item_code: p for p in products},
            "existing": {(numbers[ln.order_id], ln.position): ln for ln in lines},
        }

    def check(self, row, state):
        problems = []
        if row.key[0] not in state["orders"]:
            problems.append(f"unknown order_number {row.key[0]} (import the orders first)")
        item = row.refs["item"]
        if item and item not in state["products"]:
            problems.append(f"unknown item_code {item}")
        if not item and not row.values.get("description"):
            problems.append("a line needs an item_code or a description")
        return problems

    def _values(self, row, state) -> dict:
        values = dict(row.values, order=state["orders"][row.key[0]].id, position=row.key[1])
        item = row.refs["item"]
        if item is not ABSENT:
            product = state["products"].get(item) if item else None
            values["product"] = product.id if product else None
            if product is not None and not values.get("description"):
                values["description"] = product.description
        existing = state["existing"].get(row.key)
        known = {"quantity_milli": 0, "unit_price_cents": 0}
        known.update(existing.__data__ if existing is not None else {})
        known.update(values)
        # Thousandths times cents, rounded half up to the cent.
        amount = known["quantity_milli"] * known["unit_price_cents"]
        values["amount_cents"] = (amount + 500) // 1000
        return values

    def write(self, rows, state, prepared, now):
        defaults = {"product": None, "description": "", "shipped_milli": 0, "unit_price_cents": 0}
        result = self._upsert_with(
            SalesOrderLine, rows, state, lambda row: self._values(row, state), defaults
        )
        touched = {state["orders"][r.key[0]].id for r in rows}
        total = SalesOrderLine.select(fn.COALESCE(fn.SUM(SalesOrderLine.amount_cents), 0)).where(
            SalesOrderLine.order == SalesOrder.id
        )
        for chunk in chunked(sorted(touched), LOOKUP_BATCH):
            SalesOrder.update(total_cents=total).where(SalesOrder.id.in_(chunk)).execute()
        return result
