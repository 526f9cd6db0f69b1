"""`prepared` queries: compiled once per shape, bound per run, same rows as ordinary queries."""

from datetime import date, timedelta

from playhouse.test_utils import count_queries

from portal.db import Slot, prepared
from portal.models import Invoice, Payment, PaymentApplication
from portal.services import billing

from . import factories

TODAY = date.today()


def test_a_prepared_query_is_built_once_per_shape_and_binds_each_run(app):
    customer = factories.customer()
    other = factories.customer(name="Other Co")
    mine = [factories.invoice(customer, number=f"INV-{i}")[0] for i in range(3)]
    factories.invoice(other, number="INV-OTHER")
    built = []

    @prepared
    def numbers(limit_rows):
        built.append(limit_rows)
        query = Invoice.select().where(Invoice.customer == Slot("customer")).order_by(Invoice.id)
        return query.limit(Slot("limit")) if limit_rows else query

    with app.app_context():
        first = numbers(False, customer=customer.id)
        assert [i.number for i in first] == [i.number for i in mine]
        assert isinstance(first[0], Invoice)  # model instances, as from an ordinary query
        assert [i.number for i in numbers(False, customer=other.id)] == ["INV-OTHER"]
        assert [i.number for i in numbers(True, customer=customer.id, limit=2)] == [
            "INV-0",
            "INV-1",
        ]
        assert numbers.first(True, customer=customer.id, limit=1).number == "INV-0"
        assert numbers.first(False, customer=0) is None
        with count_queries() as counter:  # the query log still sees every run
            numbers(False, customer=customer.id)
        assert counter.count == 1
    assert built == [False, True]  # one build per shape, whatever the number of runs


def test_a_slot_applies_its_fields_conversion(app):
    customer = factories.customer()
    factories.invoice(customer, number="INV-OLD", issue_date=TODAY - timedelta(days=40))
    factories.invoice(customer, number="INV-NEW", issue_date=TODAY)

    @prepared
    def issued_since():
        return Invoice.select().where(Invoice.issue_date >= Slot("since", Invoice.issue_date))

    with app.app_context():
        found = issued_since(since=TODAY - timedelta(days=10))
    assert [i.number for i in found] == ["INV-NEW"]


def test_prepared_billing_queries_match_the_ordinary_ones_for_every_scope(app):
    """The site-limited shape binds one Slot per site: same rows as `for_user`."""
    customer = factories.customer()
    north = factories.site(customer, name="North")
    south = factories.site(customer, name="South")
    for i, site in enumerate([north, south, None, north]):
        factories.invoice(
            customer,
            site=site,
            number=f"INV-{i}",
            issue_date=TODAY - timedelta(days=i),
            due_date=TODAY - timedelta(days=10 * i),
        )
    whole = factories.portal_user(customer, email="all@example.com")
    limited = factories.portal_user(customer, email="north@example.com", sites=[north])
    for user in (whole, limited):
        with app.test_request_context():
            expected = list(Invoice.for_user(user).order_by(Invoice.issue_date.desc()))
            recent = billing.recent_invoices(user, limit=10)
            assert [i.number for i in recent] == [i.number for i in expected]
            for invoice in Invoice.select():
                visible = billing.invoice_for(user, invoice.id) is not None
                assert visible == (invoice in expected)
            summary = billing.summary(user)
            assert summary["open_count"] == len([i for i in expected if i.balance_cents > 0])
            assert summary["balance"] == sum(i.balance_cents for i in expected)
            counts = billing.status_counts(user)
            assert counts["all"] == len(expected)
            assert counts["open"] + counts["paid"] == len(expected)
            page = billing.invoice_page(
                user, billing.ListParams.from_args({"status": "all"}), per_page=2
            )
            assert [i.number for i in page.items] == [i.number for i in expected[:2]]
    assert len({i.number for i in Invoice.for_user(limited)}) == 2


def test_a_joined_query_first_run_empty_then_with_rows(app):
    """The column-to-model mapping worked out on the first run (here one with no rows) is
    reused for later runs: joined rows still come back as models with their relation."""
    customer = factories.customer()
    invoice, _ = factories.invoice(customer, total_cents=9_000)

    @prepared
    def applied():
        return (
            PaymentApplication.select(PaymentApplication, Payment)
            .join(Payment)
            .where(PaymentApplication.invoice == Slot("invoice"))
        )

    with app.app_context():
        assert applied(invoice=invoice.id) == []
        payment = factories.payment(customer, 4_000, receipt_number="R-JOIN")
        PaymentApplication.create(payment=payment, invoice=invoice, amount_cents=4_000)
        (row,) = applied(invoice=invoice.id)
        assert isinstance(row, PaymentApplication) and row.amount_cents == 4_000
        assert row.payment.receipt_number == "R-JOIN"
