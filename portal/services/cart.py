"""A login's cart and its checkout: products at today's price for the customer, quantities
checked against what the ERP last reported available, and one order per checkout.

The cart is stored (one per login), so totals are always the server's: the page's htmx
posts quantities as they are typed and gets the recomputed cart back (STYLE 8: the same
form posts without JavaScript). Checkout locks the cart row, reads its lines again, writes
the order (status `submitted`, with its `WebOrder`) and empties the cart in one transaction:
two checkouts of one cart at once make one order; the second finds the cart empty and is
sent to the order the first made.
"""

import secrets
from dataclasses import dataclass, field
from datetime import date

from .. import clock
from ..db import locked, utcnow, write_txn
from ..filters import money, quantity
from ..models import Cart, CartLine, Product, SalesOrder, SalesOrderLine, Site, WebOrder
from ..web import absolute_url
from . import audit, catalog, counters, outbox, settings

MAX_LINES = 100
CURRENCY = "USD"


class CartError(Exception):
    """Something the cart cannot do, said to the customer (next to `field` when given)."""

    def __init__(self, message: str, field: str | None = None, order=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.order = order  # the order a repeated checkout already made


@dataclass
class Item:
    """A cart line at today's price, with what stands in the way of ordering it."""

    line: CartLine
    product: Product
    price_cents: int
    problems: list = field(default_factory=list)

    @property
    def quantity_milli(self) -> int:
        return self.line.quantity_milli

    @property
    def amount_cents(self) -> int:
        return (self.quantity_milli * self.price_cents + 500) // 1000

    @property
    def was_price_cents(self) -> int | None:
        """The old document's price, when a reorder brought the line in at another price."""
        was = self.line.was_price_cents
        return was if was is not None and was != self.price_cents else None


@dataclass
class CartView:
    items: list
    errors: dict = field(default_factory=dict)  # product id: message for a refused quantity

    @property
    def total_cents(self) -> int:
        return sum(item.amount_cents for item in self.items)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def blocked(self) -> bool:
        return any(item.problems for item in self.items)


def _limit_problem(product: Product, milli: int) -> str | None:
    if not product.active:
        return "No longer sold: remove it to place the order."
    available = max(0, product.available_quantity)
    if milli > available * 1000:
        if available == 0:
            return "Out of stock."
        return f"Only {available} {product.unit} available."
    return None


def _items(cart: Cart | None, customer_id: int) -> list[Item]:
    if cart is None:
        return []
    lines = list(
        CartLine.select(CartLine, Product)
        .join(Product)
        .where(CartLine.cart == cart.id)
        .order_by(CartLine.added_at, CartLine.id)
    )
    prices = catalog.prices_of(customer_id, [line.product_id for line in lines])
    items = []
    for line in lines:
        item = Item(line, line.product, prices[line.product_id])
        problem = _limit_problem(line.product, line.quantity_milli)
        if problem:
            item.problems.append(problem)
        items.append(item)
    return items


def cart_of(user) -> Cart | None:
    return Cart.get_or_none(Cart.portal_user == user.id)


def view(user, errors: dict | None = None) -> CartView:
    """The user's cart at today's prices."""
    return CartView(_items(cart_of(user), user.contact.customer_id), errors or {})


def count(user) -> int:
    cart = cart_of(user)
    return 0 if cart is None else CartLine.select().where(CartLine.cart == cart.id).count()


def _ensure(user) -> Cart:
    """The user's cart row, made on first use (inside the caller's write_txn)."""
    Cart.insert(
        portal_user=user.id, customer=user.contact.customer_id
    ).on_conflict_ignore().execute()
    return Cart.get(Cart.portal_user == user.id)


def _orderable(product_id) -> Product:
    product = Product.get_or_none((Product.id == product_id) & (Product.active == True))  # noqa: E712
    if product is None:
        raise CartError("This product is no longer in the catalog.", "product")
    return product


def add(user, product_id, milli: int) -> None:
    """Put `milli` thousandths of a product in the cart (added to what is there already)."""
    if milli <= 0:
        raise CartError("Enter a quantity like 2 or 2.5.", "quantity")
    product = _orderable(product_id)
    with write_txn():
        cart = _ensure(user)
        line = CartLine.get_or_none((CartLine.cart == cart.id) & (CartLine.product == product.id))
        total = milli + (line.quantity_milli if line is not None else 0)
        problem = _limit_problem(product, total)
        if problem:
            raise CartError(problem, "quantity")
        if line is None:
            if CartLine.select().where(CartLine.cart == cart.id).count() >= MAX_LINES:
                raise CartError(f"A cart holds at most {MAX_LINES} products.", "product")
            CartLine.create(cart=cart, product=product, quantity_milli=total)
        else:
            CartLine.update(quantity_milli=total).where(CartLine.id == line.id).execute()
        Cart.update(updated_at=utcnow()).where(Cart.id == cart.id).execute()


def set_quantities(user, quantities: dict[int, int]) -> dict[int, str]:
    """Set each line's quantity (0 removes it); a quantity over what is available is refused
    for that line (its message returned by product id) and the line keeps its quantity."""
    cart = cart_of(user)
    if cart is None:
        return {}
    errors = {}
    with write_txn():
        lines = {
            line.product_id: line
            for line in CartLine.select(CartLine, Product)
            .join(Product)
            .where(CartLine.cart == cart.id)
        }
        for product_id, milli in quantities.items():
            line = lines.get(product_id)
            if line is None or milli == line.quantity_milli:
                continue
            if milli == 0:
                CartLine.delete().where(CartLine.id == line.id).execute()
                continue
            problem = _limit_problem(line.product, milli)
            if problem and line.product.active:
                errors[product_id] = problem
                continue
            CartLine.update(quantity_milli=milli).where(CartLine.id == line.id).execute()
        Cart.update(updated_at=utcnow()).where(Cart.id == cart.id).execute()
    return errors


def remove(user, product_id) -> None:
    cart = cart_of(user)
    if cart is not None:
        CartLine.delete().where(
            (CartLine.cart == cart.id) & (CartLine.product == product_id)
        ).execute()


def ship_to_sites(user):
    """The sites an order of this user may ship to (only their own when the login is limited)."""
    query = Site.select().where(Site.customer == user.contact.customer_id)
    if user.site_ids is not None:
        query = query.where(Site.id.in_(user.site_ids))
    return query.order_by(Site.name)


def _site(user, site_id) -> int | None:
    sites = ship_to_sites(user)
    if not site_id:
        if sites.exists():
            raise CartError("Choose where to ship the order.", "site_id")
        return None
    try:
        site_id = int(site_id)
    except (TypeError, ValueError):
        site_id = 0
    if not sites.where(Site.id == site_id).exists():
        # A tampered or stale choice: never an order for a site outside the login's scope.
        raise CartError("Choose one of your sites.", "site_id")
    return site_id


def checkout(
    user, site_id=None, customer_po: str = "", requested_date: date | None = None, notes=""
) -> SalesOrder:
    """Place the cart as an order (status `submitted`) and alert the office; one order per
    cart whatever happens at once (the cart row is locked, its lines read again)."""
    site = _site(user, site_id)
    customer_po = " ".join((customer_po or "").split())[:50]
    if requested_date is not None and requested_date < clock.business_today():
        raise CartError("Choose a date from today on.", "requested_date")
    customer_id = user.contact.customer_id
    with write_txn():
        cart = locked(Cart.select().where(Cart.portal_user == user.id)).first()
        items = _items(cart, customer_id)
        if not items:
            previous = cart.last_order if cart is not None and cart.last_order_id else None
            raise CartError("Your cart is empty.", order=previous)
        problems = [f"{i.product.item_code}: {i.problems[0]}" for i in items if i.problems]
        if problems:
            raise CartError("Fix these items first: " + "; ".join(problems), "lines")
        number = counters.next_number("web_order", "W")
        total = sum(item.amount_cents for item in items)
        order = SalesOrder.create(
            number=number,
            customer=customer_id,
            site=site,
            status="submitted",
            order_date=clock.business_today(),
            customer_po=customer_po,
            currency=CURRENCY,
            total_cents=total,
        )
        for position, item in enumerate(items, start=1):
            SalesOrderLine.create(
                order=order,
                position=position,
                product=item.product,
                description=item.product.description,
                quantity_milli=item.quantity_milli,
                unit_price_cents=item.price_cents,
                amount_cents=item.amount_cents,
            )
        web = WebOrder.create(
            order=order,
            number=number,
            cart=cart,
            checkout_key=secrets.token_hex(16),
            placed_by=user.id,
            requested_date=requested_date,
            notes=(notes or "").strip()[:2000],
        )
        CartLine.delete().where(CartLine.cart == cart.id).execute()
        Cart.update(last_order=order, updated_at=utcnow()).where(Cart.id == cart.id).execute()
        audit.record("order.submitted", order, number=number, total_cents=total, lines=len(items))
        _alert_office(order, web, user, items)
    return order


def _alert_office(order: SalesOrder, web: WebOrder, user, items) -> None:
    """Email the business's contact address about a new portal order."""
    to = settings.get("contact_email")
    if not to:
        return
    customer = order.customer
    text = [
        f"{user.display_name} <{user.email}> of {customer.name} ({customer.account_number}) "
        f"placed order {web.number} for {money(order.total_cents, order.currency)}.",
        "",
    ]
    for item in items:
        text.append(
            f"  {item.product.item_code}  {quantity(item.quantity_milli)} {item.product.unit}"
            f"  x {money(item.price_cents, order.currency)}"
        )
    if order.customer_po:
        text += ["", f"Their PO number: {order.customer_po}"]
    if web.requested_date:
        text.append(f"Requested for: {web.requested_date.isoformat()}")
    if web.notes:
        text += ["", "Notes:", web.notes]
    text += ["", f"Review it: {absolute_url('staff_orders.show', order_id=order.id)}"]
    outbox.queue(
        to,
        f"New order {web.number} from {customer.name}",
        "\n".join(text) + "\n",
        kind="order_submitted",
    )


# --- reorder ------------------------------------------------------------------------------


def reorder(user, lines) -> list[str]:
    """Replace the cart with `lines` (a past order's or quote's, each with `product`,
    `quantity_milli`, `unit_price_cents`) at today's prices; returns what could not come
    along. Changed prices are flagged on the cart by the old price kept with the line."""
    skipped = []
    wanted: dict[int, tuple[int, int]] = {}
    for line in lines:
        product = line.product
        if product is None:
            skipped.append(f"“{line.description}” is not a catalog product; ask us for it.")
        elif not product.active:
            skipped.append(f"{product.item_code} is no longer sold.")
        else:
            milli, _ = wanted.get(product.id, (0, 0))
            wanted[product.id] = (milli + line.quantity_milli, line.unit_price_cents)
    with write_txn():
        cart = _ensure(user)
        CartLine.delete().where(CartLine.cart == cart.id).execute()
        for product_id, (milli, was) in list(wanted.items())[:MAX_LINES]:
            CartLine.create(
                cart=cart, product=product_id, quantity_milli=milli, was_price_cents=was
            )
        Cart.update(updated_at=utcnow()).where(Cart.id == cart.id).execute()
    return skipped
