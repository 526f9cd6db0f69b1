"""CSV import kind: customer prices, by (account number, item code)."""

from ...models import CustomerPrice, Product
from .base import Kind, customers_by_account, in_chunks
from .parsers import parse_money


class Prices(Kind):
    name = "prices"
    columns = ("account_number", "item_code", "price")
    required = ("account_number", "item_code", "price")

    def parse(self, cells):
        account = cells.text("account_number", 50, required=True)
        item = cells.text("item_code", 50, required=True)
        price = cells.parsed("price", parse_money, 0, required=True)
        return (account, item), {"price_cents": price}, {}

    def describe(self, key):
        return f"price of {key[1]} for account {key[0]}"

    def fetch(self, rows, lock=False):
        customers = customers_by_account(r.key[0] for r in rows)
        products = in_chunks(Product.item_code, (r.key[1] for r in rows), Product.select())
        products = {p.item_code: p for p in products}
        accounts = {c.id: c.account_number for c in customers.values()}
        items = {p.id: p.item_code for p in products.values()}
        query = CustomerPrice.select()
        prices = in_chunks(CustomerPrice.customer, accounts, query)
        existing = {
            (accounts[p.customer_id], items[p.product_id]): p
            for p in prices
            if p.product_id in items
        }
        return {"customers": customers, "products": products, "existing": existing}

    def check(self, row, state):
        account, item = row.key
        problems = []
        if account not in state["customers"]:
            problems.append(f"unknown account_number {account}")
        if item not in state["products"]:
            problems.append(f"unknown item_code {item}")
        return problems

    def new_values(self, row, state, now):
        account, item = row.key
        return {
            "customer": state["customers"][account].id,
            "product": state["products"][item].id,
            **row.values,
        }

    def write(self, rows, state, prepared, now):
        return self._upsert(CustomerPrice, rows, state, now)
