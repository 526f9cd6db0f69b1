"""The demo seeds: what the README promises is there, in every state, and idempotent."""

import time
from collections import Counter as Tally
from datetime import date, timedelta

import pytest

from portal.models import (
    ALL_MODELS,
    AuditLog,
    Case,
    CaseMessage,
    Contact,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentApplication,
    PortalUser,
    Quote,
    QuoteLine,
    Rfq,
    SalesOrder,
    Shipment,
    Site,
    StaffUser,
)
from portal.money import discount_available
from portal.security import normalize_code, verify_code
from portal.services import importer, seed, settings

from .conftest import login, staff_login


@pytest.fixture
def demo(app):
    seed.load_demo()
    return app


def snapshot() -> dict:
    """Every row of every table except the audit log, for before/after comparisons."""
    return {
        m.__name__: list(m.select().order_by(*m._meta.get_primary_keys()).tuples())
        for m in ALL_MODELS
        if m is not AuditLog
    }


def test_customers_and_sites(demo):
    names = {c.account_number: c.name for c in Customer.select()}
    assert names["ACME01"] == "Acme Manufacturing"
    assert names["BIRCH01"] == "Birchwood Dental"
    assert names["COPPER1"] == "Copperline Logistics"
    acme_sites = {
        s.name for s in Site.select().join(Customer).where(Customer.account_number == "ACME01")
    }
    assert {"Plant 1", "Plant 2", "Warehouse"} <= acme_sites
    assert Contact.select().count() >= 5


def test_invoices_in_every_state_and_aging_bucket(demo):
    today = date.today()
    invoices = list(Invoice.select())
    states = Tally(i.state(today) for i in invoices)
    for state in ("open", "overdue", "partly paid", "paid", "void"):
        assert states[state] >= 1, states
    overdue_days = {(today - i.due_date).days for i in invoices if i.state(today) == "overdue"}
    buckets = {
        "1-30": any(1 <= d <= 30 for d in overdue_days),
        "31-60": any(31 <= d <= 60 for d in overdue_days),
        "61-90": any(61 <= d <= 90 for d in overdue_days),
        "90+": any(d > 90 for d in overdue_days),
    }
    assert all(buckets.values()), buckets
    in_window = [i for i in invoices if discount_available(i, today)]
    assert len(in_window) >= 2
    for invoice in invoices:  # the money adds up everywhere
        assert 0 <= invoice.amount_paid_cents + invoice.discount_taken_cents <= invoice.total_cents
        lines = list(invoice.lines)
        assert lines and sum(line.amount_cents for line in lines) == invoice.total_cents


def test_the_readme_quick_pay_example(demo):
    """A3: the README's code is valid by the importer's rules and stored only hashed."""
    invoice = Invoice.get(Invoice.number == seed.QUICK_PAY_INVOICE)
    assert invoice.customer.account_number == "ACME01"
    assert invoice.state(date.today()) == "open"
    assert invoice.balance_cents == 124000
    assert discount_available(invoice, date.today()) == 2480
    code = importer.parse_quick_pay_code(seed.QUICK_PAY_CODE)
    assert code == normalize_code(seed.QUICK_PAY_CODE)
    assert verify_code(invoice.quick_pay_hash, code)
    assert invoice.quick_pay_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    "email", ["ap@acme.example", "plant2@acme.example", "office@birchwood.example"]
)
def test_demo_customer_logins(demo, email):
    response = login(demo.test_client(), email, seed.PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/"


@pytest.mark.parametrize("email", ["admin@example.com", "agent@example.com"])
def test_demo_staff_logins(demo, email):
    response = staff_login(demo.test_client(), email, seed.PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/staff/"


def test_demo_roles_and_site_scope(demo):
    def user(email):
        return PortalUser.select().join(Contact).where(Contact.email == email).get()

    ap = user("ap@acme.example")
    assert ap.role_set == set(seed.ALL_ROLES.split(",")) and ap.site_ids is None
    plant2 = user("plant2@acme.example")
    assert plant2.role_set == {"invoices", "orders", "cases"}
    assert [Site.get_by_id(i).name for i in plant2.site_ids] == ["Plant 2"]
    visible = {i.site.name for i in Invoice.for_user(plant2)}
    assert visible == {"Plant 2"}
    assert user("office@birchwood.example").has_role("company_admin")
    roles = {s.email: s.role for s in StaffUser.select()}
    assert roles == {"admin@example.com": "admin", "agent@example.com": "agent"}


def test_payments_sales_and_support(demo):
    for payment in Payment.select():
        applied = sum(a.amount_cents for a in payment.applications)
        assert applied + payment.unapplied_cents == payment.amount_cents
    assert PaymentApplication.select().where(PaymentApplication.discount_cents > 0).exists()
    assert Rfq.select().count() >= 3
    assert {q.status for q in Quote.select()} >= {"published", "accepted", "declined"}
    for quote in Quote.select():
        assert quote.total_cents == sum(line.amount_cents for line in quote.lines)
    assert QuoteLine.select().count() >= 4
    statuses = {o.status for o in SalesOrder.select()}
    assert {"open", "partially_shipped", "shipped"} <= statuses
    assert Shipment.select().where(Shipment.tracking_number != "").count() >= 3
    assert Case.select().count() >= 3
    assert CaseMessage.select().where(CaseMessage.staff_user.is_null(False)).exists()
    assert CaseMessage.select().where(CaseMessage.internal == True).exists()  # noqa: E712
    assert settings.get("bulletin_message")


def test_seed_twice_changes_nothing_and_is_fast(app):
    started = time.perf_counter()
    seed.load_demo()
    assert time.perf_counter() - started < 5
    before = snapshot()
    counts = seed.load_demo()
    assert all(v == (0, 0) for v in counts.values()), counts
    assert snapshot() == before


def test_seed_keeps_what_staff_changed(app):
    settings.save({"bulletin_message": "Closed for the holidays"})
    seed.load_demo()
    assert settings.get("bulletin_message") == "Closed for the holidays"


def test_seeding_on_a_later_day_moves_the_dates_along(app):
    seed.load_demo(today=date.today() - timedelta(days=7))
    old_due = Invoice.get(Invoice.number == "INV-10042").due_date
    seed.load_demo()
    invoice = Invoice.get(Invoice.number == "INV-10042")
    assert invoice.due_date == old_due + timedelta(days=7)
    assert discount_available(invoice, date.today())
    assert InvoiceLine.select().where(InvoiceLine.invoice == invoice).count() == 3


def test_relative_dates():
    text = "a,b,c\ntoday,today-3,today+27\nx,today-,2026-01-01"
    assert seed.relative_csv(text, date(2026, 3, 10)) == (
        "a,b,c\n2026-03-10,2026-03-07,2026-04-06\nx,today-,2026-01-01"
    )


def test_the_readme_quick_pay_example_works_on_the_guest_page(demo):
    """The README's example, typed with its dashes into the real guest form, opens the
    invoice (the same path a visitor of the demo takes)."""
    client = demo.test_client()
    response = client.post(
        "/pay/", data={"number": seed.QUICK_PAY_INVOICE, "secret": seed.QUICK_PAY_CODE}
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert seed.QUICK_PAY_INVOICE in page and "1,240.00" in page
