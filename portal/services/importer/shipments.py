"""CSV import kind: shipments of imported sales orders, by shipment number."""

from ...models import SalesOrder, Shipment
from .base import ABSENT, Kind, in_chunks, put
from .parsers import parse_day_start


class Shipments(Kind):
    """Shipments of imported orders, by shipment number, with carrier tracking."""

    name = "shipments"
    columns = ("order_number", "number", "shipped_on", "carrier", "tracking_number", "delivered_on")
    required = ("order_number", "number", "shipped_on")
    insert_fields = (
        "order",
        "number",
        "status",
        "shipped_at",
        "delivered_at",
        "carrier",
        "tracking_number",
    )

    def parse(self, cells):
        values = {}
        key = cells.text("number", 30, required=True)
        order = cells.text("order_number", 30, required=True)
        put(values, "shipped_at", cells.parsed("shipped_on", parse_day_start, None, required=True))
        delivered = cells.parsed("delivered_on", parse_day_start, None)
        put(values, "delivered_at", delivered)
        if delivered is not ABSENT:
            values["status"] = "delivered" if delivered else "shipped"
        put(values, "carrier", cells.text("carrier", 50))
        put(values, "tracking_number", cells.text("tracking_number", 100))
        return key, values, {"order": order}

    def describe(self, key):
        return f"shipment {key}"

    def fetch(self, rows, lock=False):
        orders = in_chunks(SalesOrder.number, (r.refs["order"] for r in rows), SalesOrder.select())
        shipments = in_chunks(Shipment.number, (r.key for r in rows), Shipment.select())
        return {
            "orders": {o.number: o for o in orders},
            "existing": {s.number: s for s in shipments},
        }

    def check(self, row, state):
        order = state["orders"].get(row.refs["order"])
        if order is None:
            return [f"unknown order_number {row.refs['order']} (import the orders first)"]
        existing = state["existing"].get(row.key)
        if existing is not None and existing.order_id != order.id:
            return [f"shipment {row.key} belongs to another order"]
        return []

    def write(self, rows, state, prepared, now):
        defaults = {"status": "shipped", "delivered_at": None, "carrier": "", "tracking_number": ""}
        orders = state["orders"]
        fresh = [row for row in rows if row.key not in state["existing"]]
        result = self._upsert_with(
            Shipment,
            rows,
            state,
            lambda row: dict(row.values, order=orders[row.refs["order"]].id, number=row.key),
            defaults,
        )
        from .. import orders as order_service  # it reaches the web layer for links

        order_service.announce_shipments(
            [
                (orders[row.refs["order"]], {**defaults, **row.values, "number": row.key})
                for row in fresh
            ],
            now,
        )
        return result
