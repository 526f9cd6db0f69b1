"""The catalog as a customer sees it: products at the customer's own price (their price
list, else the list price), with the unit and the quantity the ERP last reported available.

Products are the whole business's catalogue, not a customer's rows, so a product's page is
open to every login with the `orders` role; only the price differs per customer. A product
the ERP withdrew (`active` false) is not shown and cannot be ordered.
"""

from dataclasses import dataclass

from peewee import JOIN, fn

from ..models import CustomerPrice, Product

PAGE_SIZE = 24


@dataclass(frozen=True)
class Priced:
    """A product with this customer's price; `special` when the price list set it."""

    product: Product
    price_cents: int
    special: bool

    @property
    def available(self) -> int:
        return max(0, self.product.available_quantity)

    @property
    def in_stock(self) -> bool:
        return self.available > 0


def _priced_query(customer_id: int):
    own = CustomerPrice.alias()
    return (
        Product.select(Product, own.price_cents.alias("own_price"))
        .join(
            own,
            JOIN.LEFT_OUTER,
            on=((own.product == Product.id) & (own.customer == customer_id)),
        )
        .where(Product.active == True)  # noqa: E712 (a SQL expression)
        .objects()  # `own_price` lands on the Product, not on the joined price row
    )


def _priced(product) -> Priced:
    own = getattr(product, "own_price", None)
    return Priced(product, own if own is not None else product.price_cents, own is not None)


def search(customer_id: int, q: str = ""):
    """Active products matching `q` (item code or description words), by item code: a query
    of Products carrying `own_price`; `priced()` turns rows into `Priced`."""
    query = _priced_query(customer_id).order_by(Product.item_code)
    for word in (q or "").split()[:5]:
        like = f"%{word}%"
        query = query.where(Product.item_code.ilike(like) | Product.description.ilike(like))
    return query


def priced(rows) -> list[Priced]:
    return [_priced(row) for row in rows]


def product_for(customer_id: int, item_code: str) -> Priced | None:
    """One active product by item code with the customer's price, or None (hence 404)."""
    row = _priced_query(customer_id).where(Product.item_code == (item_code or "")).first()
    return _priced(row) if row is not None else None


def prices_of(customer_id: int, product_ids) -> dict[int, int]:
    """{product id: today's price for the customer} for these products (withdrawn too)."""
    ids = list(set(product_ids))
    if not ids:
        return {}
    rows = (
        Product.select(Product.id, fn.COALESCE(CustomerPrice.price_cents, Product.price_cents))
        .join(
            CustomerPrice,
            JOIN.LEFT_OUTER,
            on=((CustomerPrice.product == Product.id) & (CustomerPrice.customer == customer_id)),
        )
        .where(Product.id.in_(ids))
        .tuples()
    )
    return {product_id: int(price) for product_id, price in rows}
