"""CSV import (docs/design.md "CSV columns"): every kind, all-or-nothing, upsert, idempotence."""

import io
import json
import multiprocessing
from datetime import date, timedelta

import pytest

from portal.models import (
    AuditLog,
    Contact,
    Customer,
    CustomerPrice,
    Invoice,
    Product,
    Site,
)
from portal.security import normalize_code, unseal, verify_code
from portal.services import importer

from . import factories

CUSTOMERS = """account_number,name,email,phone,address,allow_self_registration,portal_enabled
ACME01,Acme Manufacturing,AP@Acme.example,555-0100,"1 Main St
Springfield",yes,yes
BIRCH01,Birchwood Dental,office@birchwood.example,,,no,no
"""


def run(kind: str, text: str) -> importer.ImportResult:
    return importer.import_csv(kind, io.StringIO(text))


def counts() -> dict:
    models = (Customer, Site, Contact, Invoice, Product, CustomerPrice)
    return {m.__name__: m.select().count() for m in models}


def import_ok(kind: str, text: str) -> importer.ImportResult:
    result = run(kind, text)
    assert result.ok, result.errors
    return result


@pytest.fixture
def accounts(app):
    """Two customers with sites, imported the way a real installation starts."""
    import_ok("customers", CUSTOMERS)
    import_ok(
        "sites",
        "account_number,site_code,name,address\n"
        "ACME01,P1,Plant 1,1 Main St\nACME01,P2,Plant 2,2 Side St\nBIRCH01,MAIN,Main office,\n",
    )
    return {c.account_number: c for c in Customer.select()}


def test_customers_are_created_with_every_column(app):
    result = import_ok("customers", CUSTOMERS)
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    acme = Customer.get(Customer.account_number == "ACME01")
    assert acme.name == "Acme Manufacturing"
    assert acme.email == "ap@acme.example"  # lower-cased
    assert acme.phone == "555-0100"
    assert acme.address == "1 Main St\nSpringfield"  # quoted multi-line cell
    assert acme.allow_self_registration is True and acme.portal_enabled is True
    birch = Customer.get(Customer.account_number == "BIRCH01")
    assert birch.allow_self_registration is False and birch.portal_enabled is False


def test_customers_upsert_by_account_number(app):
    import_ok("customers", CUSTOMERS)
    before = Customer.get(Customer.account_number == "BIRCH01")
    # Only two columns: the others stay as they are.
    result = import_ok(
        "customers", "account_number,name\nACME01,Acme Manufacturing\nBIRCH01,Birchwood Dental Co\n"
    )
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    after = Customer.get(Customer.account_number == "BIRCH01")
    assert after.name == "Birchwood Dental Co"
    assert after.email == "office@birchwood.example"
    assert after.portal_enabled is False
    assert after.updated_at >= before.updated_at
    assert Customer.select().count() == 2


def test_sites_resolve_their_account(accounts):
    sites = {(s.customer.account_number, s.site_code): s.name for s in Site.select()}
    assert sites == {
        ("ACME01", "P1"): "Plant 1",
        ("ACME01", "P2"): "Plant 2",
        ("BIRCH01", "MAIN"): "Main office",
    }
    # The same site code under another account is another site; a rename updates.
    result = import_ok(
        "sites", "account_number,site_code,name\nBIRCH01,P1,Annex\nACME01,P1,Plant One\n"
    )
    assert (result.created, result.updated) == (1, 1)
    assert Site.get(Site.customer == accounts["ACME01"], Site.site_code == "P1").name == "Plant One"


def test_contacts_upsert_by_lower_cased_email(accounts):
    result = import_ok(
        "contacts",
        "account_number,email,first_name,last_name,phone,site_code\n"
        "ACME01,Jo.Smith@Acme.example,Jo,Smith,555-1,P2\n"
        "BIRCH01,office@birchwood.example,Olive,Office,,\n",
    )
    assert result.created == 2
    jo = Contact.get(Contact.email == "jo.smith@acme.example")
    assert (jo.first_name, jo.last_name, jo.site.site_code) == ("Jo", "Smith", "P2")
    assert Contact.get(Contact.email == "office@birchwood.example").site is None
    again = import_ok(
        "contacts",
        "account_number,email,last_name,site_code\nACME01,JO.SMITH@acme.example,Smyth,\n",
    )
    assert (again.created, again.updated) == (0, 1)
    jo = Contact.get_by_id(jo.id)
    assert (jo.first_name, jo.last_name, jo.site) == ("Jo", "Smyth", None)


def test_imported_contacts_are_invited_when_the_account_class_says_so(accounts, mailbox):
    """The back office's auto-invite rule holds for imported contacts too: new contacts of
    an auto-invite account get an invitation (default roles), others and updates do not."""
    from portal.models import OutboxMessage, PortalUser
    from portal.services import outbox, settings

    Customer.update(auto_invite=True).where(Customer.account_number == "ACME01").execute()
    text = (
        "account_number,email,first_name,last_name,phone,site_code\n"
        "ACME01,new.buyer@acme.example,New,Buyer,,\n"
        "BIRCH01,front@birchwood.example,Front,Desk,,\n"
    )
    import_ok("contacts", text)
    users = list(PortalUser.select().join(Contact))
    assert [u.contact.email for u in users] == ["new.buyer@acme.example"]
    assert users[0].status == "invited"
    assert users[0].role_set == set(settings.get("default_roles"))
    entry = AuditLog.get(AuditLog.action == "access.invited")
    assert (entry.actor_kind, entry.actor_label) == ("system", "import")
    outbox.deliver_due()
    message = mailbox.wait_for(1)[0]
    assert message["To"] == "new.buyer@acme.example"
    # Importing the same file again updates nothing and invites nobody twice.
    import_ok("contacts", text)
    assert PortalUser.select().count() == 1
    assert OutboxMessage.select().count() == 1


def test_a_bad_contact_file_invites_nobody(accounts):
    from portal.models import OutboxMessage, PortalUser

    Customer.update(auto_invite=True).execute()
    result = run(
        "contacts",
        "account_number,email\nACME01,one@acme.example\nNOPE99,two@acme.example\n",
    )
    assert result.errors == ["line 3: unknown account_number NOPE99"]
    assert PortalUser.select().count() == 0 and OutboxMessage.select().count() == 0


def test_a_contact_cannot_move_to_another_account(accounts):
    """E-rows: moving a contact would hand its portal login another company's data."""
    import_ok("contacts", "account_number,email\nACME01,jo@acme.example\n")
    result = run("contacts", "account_number,email\nBIRCH01,jo@acme.example\n")
    assert result.errors == ["line 2: jo@acme.example is a contact of account ACME01, not BIRCH01"]
    assert Contact.get(Contact.email == "jo@acme.example").customer.account_number == "ACME01"


INVOICE_HEADER = (
    "number,account_number,site_code,issue_date,due_date,total,amount_paid,currency,"
    "quick_pay_code,discount_percent,discount_days,description\n"
)


def test_invoices_are_created_with_hashed_codes(accounts):
    """A3: a given quick-pay code is stored as an argon2id hash (and sealed), never in clear."""
    result = import_ok(
        "invoices",
        INVOICE_HEADER + "INV-1,ACME01,P2,2026-01-05,2026-02-04,1250.00,250.00,usd,"
        "abcd-efgh-jkmn,2,10,Widgets\n"
        "INV-2,BIRCH01,,2026-01-06,2026-02-05,99.99,,,,,,\n",
    )
    assert result.created == 2
    inv = Invoice.get(Invoice.number == "INV-1")
    assert inv.customer.account_number == "ACME01" and inv.site.site_code == "P2"
    assert (inv.issue_date, inv.due_date) == (date(2026, 1, 5), date(2026, 2, 4))
    assert (inv.total_cents, inv.amount_paid_cents, inv.balance_cents) == (125000, 25000, 100000)
    assert (inv.currency, inv.discount_bp, inv.discount_days) == ("USD", 200, 10)
    assert inv.description == "Widgets"
    assert inv.quick_pay_hash.startswith("$argon2id$")
    assert verify_code(inv.quick_pay_hash, "ABCDEFGHJKMN")
    assert unseal(inv.quick_pay_sealed) == "ABCDEFGHJKMN"
    row = Invoice.select().where(Invoice.number == "INV-1").dicts().get()
    assert not any("ABCDEFGHJKMN" in str(value).upper() for value in row.values())
    # A blank code means "generate one": 12 characters of the code alphabet.
    other = Invoice.get(Invoice.number == "INV-2")
    generated = unseal(other.quick_pay_sealed)
    assert len(generated) == 12 and normalize_code(generated) == generated
    assert verify_code(other.quick_pay_hash, generated)
    assert (other.site, other.currency, other.amount_paid_cents) == (None, "USD", 0)


def test_text_comes_back_as_it_was_written_whatever_it_holds(accounts):
    """On PostgreSQL new rows go in through COPY's text format, where a tab, a newline, a
    backslash or the two characters \\N would otherwise end a value, a row or mean NULL."""
    description = 'Tab\there, "quoted", back\\slash, \\N, \\t\nsecond line\r\nthird é'
    import_ok(
        "invoices",
        "number,account_number,issue_date,due_date,total,description,customer_po\n"
        + "INV-T,ACME01,2026-01-05,2026-02-04,10.00,"
        + '"'
        + description.replace('"', '""')
        + '",\\N\n',
    )
    invoice = Invoice.get(Invoice.number == "INV-T")
    assert invoice.description == description
    assert invoice.customer_po == "\\N"
    assert invoice.site is None


def test_an_update_writes_every_kind_of_value_as_it_was_given(accounts):
    """On PostgreSQL changes go in as `UPDATE ... FROM (VALUES ...)` with each value cast to
    its column's type: text with quotes and backslashes, a date, money, a site set and then
    taken away (a column of NULLs), and a yes/no switch all land as written."""
    header = "number,account_number,site_code,issue_date,due_date,total,description\n"
    import_ok("invoices", header + "INV-U,ACME01,P1,2026-01-05,2026-02-04,10.00,plain\n")
    description = 'O\'Brien \\ "quoted" \\N tab\there'
    text = (
        header
        + "INV-U,ACME01,,2026-01-06,2026-03-01,12.34,"
        + '"'
        + description.replace('"', '""')
        + '"\n'
    )
    assert import_ok("invoices", text).updated == 1
    invoice = Invoice.get(Invoice.number == "INV-U")
    assert invoice.description == description
    assert invoice.site is None
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 1, 6), date(2026, 3, 1))
    assert invoice.total_cents == 1_234
    changed = import_ok("customers", "account_number,name,portal_enabled\nACME01,Acme's,no\n")
    assert changed.updated == 1
    acme = Customer.get(Customer.account_number == "ACME01")
    assert (acme.name, acme.portal_enabled) == ("Acme's", False)


def test_reimporting_invoices_keeps_codes_and_never_lowers_paid(accounts):
    text = INVOICE_HEADER + "INV-1,ACME01,,2026-01-05,2026-02-04,100.00,40.00,USD,,,,\n"
    import_ok("invoices", text)
    first = Invoice.get(Invoice.number == "INV-1")
    # The portal took a payment the ERP has not posted yet.
    Invoice.update(amount_paid_cents=6000).where(Invoice.id == first.id).execute()
    result = import_ok("invoices", text.replace("100.00", "120.00"))
    assert result.updated == 1
    after = Invoice.get_by_id(first.id)
    assert after.total_cents == 12000
    assert after.amount_paid_cents == 6000  # not lowered to 40.00
    assert after.quick_pay_hash == first.quick_pay_hash  # blank code keeps the code
    assert after.quick_pay_version == first.quick_pay_version


def test_a_new_code_replaces_the_old_one_and_its_links(accounts):
    text = INVOICE_HEADER + "INV-1,ACME01,,2026-01-05,2026-02-04,100.00,,USD,{code},,,\n"
    import_ok("invoices", text.format(code="ABCD-EFGH-JKMN"))
    import_ok("invoices", text.format(code="ABCD-EFGH-JKMN"))  # same code: nothing changes
    assert Invoice.get(Invoice.number == "INV-1").quick_pay_version == 1
    import_ok("invoices", text.format(code="ZYXW-VTSR-QPNM"))
    inv = Invoice.get(Invoice.number == "INV-1")
    assert inv.quick_pay_version == 2
    assert verify_code(inv.quick_pay_hash, "ZYXWVTSRQPNM")
    assert not verify_code(inv.quick_pay_hash, "ABCDEFGHJKMN")


def test_invoice_checks_against_the_database(accounts):
    factories.invoice(accounts["BIRCH01"], number="INV-9", total_cents=10000, paid_cents=5000)
    result = run(
        "invoices",
        INVOICE_HEADER + "INV-7,NOPE,,2026-01-05,2026-02-04,1.00,,,,,,\n"
        "INV-8,ACME01,XX,2026-01-05,2026-02-04,1.00,,,,,,\n"
        "INV-9,ACME01,,2026-01-05,2026-02-04,100.00,,,,,,\n"
        "INV-9,BIRCH01,,2026-01-05,2026-02-04,1.00,,,,,,\n",
    )
    assert result.errors == [
        "line 2: unknown account_number NOPE",
        "line 3: unknown site_code XX for account ACME01",
        "line 4: invoice INV-9 belongs to account BIRCH01, not ACME01",
        "line 5: invoice number INV-9 appears again (first on line 4)",
    ]
    result = run("invoices", INVOICE_HEADER + "INV-9,BIRCH01,,2026-01-05,2026-02-04,40.00,,,,,,\n")
    assert result.errors == [
        "line 2: total 40.00 is less than the 50.00 already paid or discounted on this invoice"
    ]


BAD_INVOICE_ROWS = [
    (",ACME01,,2026-01-05,2026-02-04,1.00,,,,,,", "number is required"),
    ("X1,ACME01,,2026-02-30,2026-03-04,1.00,,,,,,", 'issue_date "2026-02-30" is not a real'),
    ("X1,ACME01,,05/01/2026,2026-03-04,1.00,,,,,,", "is not a date like"),
    ("X1,ACME01,,2026-03-05,2026-03-04,1.00,,,,,,", "due_date is before issue_date"),
    ("X1,ACME01,,2026-01-05,2026-02-04,-1.00,,,,,,", 'total "-1.00" is not an amount'),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.001,,,,,,", "is not an amount"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,2.00,,,,,", "amount_paid 2.00 is more than"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,US,,,,", "three-letter currency"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,,1234,,,", "quick_pay_code is too weak"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,,AAAAAAAAAAAA,,,", "too few different"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,,,2,,", "discount_days is required"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,,,100,10,", "percentage below 100"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,,,2,400,", "more than 365 days"),
    ("X1,ACME01,,2026-01-05,2026-02-04,1.00,,,", "expected 12 fields, found 9"),
]


def test_bad_invoice_rows_name_the_line_and_the_reason(accounts):
    """Every bad row of one file is reported, each with its own line and reason."""
    good = "G1,ACME01,,2026-01-05,2026-02-04,1.00,,,,,,"
    rows = [good] + [row for row, _ in BAD_INVOICE_ROWS] + [good.replace("G1", "G2")]
    result = run("invoices", INVOICE_HEADER + "\n".join(rows) + "\n")
    assert len(result.errors) == len(BAD_INVOICE_ROWS), result.errors
    for line, (error, (_, reason)) in enumerate(
        zip(result.errors, BAD_INVOICE_ROWS, strict=True), start=3
    ):
        assert error.startswith(f"line {line}: ") and reason in error, (line, error)
    assert Invoice.select().count() == 0


def test_a_bad_code_is_not_echoed_back(accounts):
    """A3: the message about a weak code does not repeat the code (it may reach a log)."""
    row = "X1,ACME01,,2026-01-05,2026-02-04,1.00,,,SECRET-1,,,\n"
    result = run("invoices", INVOICE_HEADER + row)
    assert result.errors and "SECRET" not in result.errors[0]


def test_one_bad_row_writes_nothing_and_every_bad_row_is_reported(accounts):
    before = counts()
    audits = AuditLog.select().count()
    result = run(
        "contacts",
        "account_number,email,first_name\n"
        "ACME01,a@acme.example,Al\n"
        "ACME01,not-an-email,Bo\n"
        "\n"  # blank lines are skipped but still counted
        "ACME01,c@acme.example,Cy\n"
        "GHOST,d@acme.example,Di\n",
    )
    assert result.errors == [
        'line 3: email "not-an-email" is not a valid email address',
        "line 6: unknown account_number GHOST",
    ]
    assert (result.created, result.updated) == (0, 0)
    assert counts() == before
    assert AuditLog.select().count() == audits


HEADER_PROBLEMS = [
    ("", "line 1: a header row is required"),
    ("account_number,name,colour", "line 1: unknown column(s) colour"),
    ("account_number,name,name", "line 1: column(s) name appear more than once"),
    ("account_number,email", "line 1: missing required column(s) name"),
]


def test_header_problems(app):
    for header, reason in HEADER_PROBLEMS:
        result = run("customers", header + "\nACME01,Acme,x\n" if header else "")
        assert len(result.errors) == 1 and result.errors[0].startswith(reason), result.errors
    assert Customer.select().count() == 0


def test_header_case_bom_and_bytes(app):
    data = "\ufeffAccount_Number, NAME\r\nACME01,Acme\r\n".encode()
    result = importer.import_csv("customers", io.BytesIO(data))
    assert result.ok, result.errors
    assert Customer.get().account_number == "ACME01"


def test_unknown_kind_is_refused(app):
    with pytest.raises(ValueError):
        run("widgets", "a\n1\n")


def test_products_and_customer_prices(accounts):
    result = import_ok(
        "products",
        "item_code,description,unit,price,available_quantity\n"
        "BOLT-10,Hex bolt M10,box,12.50,400\nNUT-10,Hex nut M10,,3.00,\n",
    )
    assert result.created == 2
    bolt = Product.get(Product.item_code == "BOLT-10")
    assert (bolt.unit, bolt.price_cents, bolt.available_quantity) == ("box", 1250, 400)
    assert Product.get(Product.item_code == "NUT-10").unit == "ea"
    assert bolt.active and Product.get(Product.item_code == "NUT-10").active
    # The ERP withdraws a product: `active` no (the catalog stops offering it); without the
    # column, a later import leaves it withdrawn.
    withdrawn = import_ok(
        "products", "item_code,description,price,active\nNUT-10,Hex nut,3.00,no\n"
    )
    assert withdrawn.updated == 1 and not Product.get(Product.item_code == "NUT-10").active
    import_ok("products", "item_code,description,price\nNUT-10,Hex nut M10,3.00\n")
    assert not Product.get(Product.item_code == "NUT-10").active
    result = import_ok("prices", "account_number,item_code,price\nACME01,BOLT-10,11.00\n")
    assert result.created == 1
    price = CustomerPrice.get()
    assert (price.customer.account_number, price.product.item_code) == ("ACME01", "BOLT-10")
    assert price.price_cents == 1100
    again = import_ok("prices", "account_number,item_code,price\nACME01,BOLT-10,10.00\n")
    assert (again.created, again.updated) == (0, 1)
    assert CustomerPrice.get().price_cents == 1000
    bad = run("prices", "account_number,item_code,price\nACME01,GHOST,1.00\nNOPE,BOLT-10,1\n")
    assert bad.errors == [
        "line 2: unknown item_code GHOST",
        "line 3: unknown account_number NOPE",
    ]


ORDERS = (
    "number,account_number,site_code,order_date,promised_date,customer_po,status,currency,"
    "quote_number\n"
    "SO-1,ACME01,P2,2026-03-02,2026-03-20,PO-77,open,,Q-ACC\n"
    "SO-2,BIRCH01,,2026-03-03,,,Partially shipped,EUR,\n"
)
ORDER_LINES = (
    "order_number,line,item_code,description,quantity,shipped_quantity,unit_price\n"
    "SO-1,1,BOLT-10,,400,150,12.50\n"
    "SO-1,2,,Welding jig,1,,380.00\n"
    "SO-2,1,,Compressor service,2.5,2.5,95.00\n"
)
SHIPMENTS = (
    "order_number,number,shipped_on,carrier,tracking_number,delivered_on\n"
    "SO-1,SH-1,2026-03-10,UPS,1Z999,2026-03-12\n"
    "SO-1,SH-2,2026-03-15,FedEx,7777,\n"
)


def test_orders_their_lines_and_shipments_come_from_the_erp(accounts):
    """Orders (tied to the accepted quote), then their lines (totals follow), then shipments;
    re-importing changes only what changed. The customer sees them under Orders."""
    from portal.models import SalesOrder, SalesOrderLine, Shipment

    factories.product(item_code="BOLT-10", description="Hex bolt M10", price_cents=1290)
    quote = factories.quote(accounts["ACME01"], status="accepted", number="Q-ACC")
    assert import_ok("orders", ORDERS).created == 2
    so1 = SalesOrder.get(SalesOrder.number == "SO-1")
    assert (so1.customer_id, so1.site.site_code, so1.quote_id) == (
        accounts["ACME01"].id,
        "P2",
        quote.id,
    )
    assert (so1.promised_date, so1.customer_po, so1.status, so1.currency) == (
        date(2026, 3, 20),
        "PO-77",
        "open",
        "USD",
    )
    so2 = SalesOrder.get(SalesOrder.number == "SO-2")
    assert (so2.site_id, so2.quote_id, so2.status, so2.currency) == (
        None,
        None,
        "partially_shipped",
        "EUR",
    )

    assert import_ok("order_lines", ORDER_LINES).created == 3
    lines = list(
        SalesOrderLine.select().where(SalesOrderLine.order == so1).order_by(SalesOrderLine.position)
    )
    assert [(ln.product.item_code if ln.product else None, ln.description) for ln in lines] == [
        ("BOLT-10", "Hex bolt M10"),
        (None, "Welding jig"),
    ]
    assert [(ln.quantity_milli, ln.shipped_milli, ln.amount_cents) for ln in lines] == [
        (400_000, 150_000, 500_000),
        (1000, 0, 38_000),
    ]
    assert SalesOrder.get_by_id(so1.id).total_cents == 538_000
    assert SalesOrder.get_by_id(so2.id).total_cents == 23_750

    assert import_ok("shipments", SHIPMENTS).created == 2
    first = Shipment.get(Shipment.number == "SH-1")
    assert (first.status, first.carrier, first.delivered_at.date()) == (
        "delivered",
        "UPS",
        date(2026, 3, 12),
    )
    assert Shipment.get(Shipment.number == "SH-2").status == "shipped"

    # The ERP ships more and delivers the second parcel: only those rows change.
    more = ORDER_LINES.replace("SO-1,1,BOLT-10,,400,150,12.50", "SO-1,1,BOLT-10,,400,400,12.50")
    result = import_ok("order_lines", more)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    delivered = SHIPMENTS.replace("7777,", "7777,2026-03-18")
    assert import_ok("shipments", delivered).updated == 1
    assert Shipment.get(Shipment.number == "SH-2").status == "delivered"
    shipped = ORDERS.replace(",open,", ",shipped,")
    assert import_ok("orders", shipped).updated == 1

    for kind, text in (("orders", shipped), ("order_lines", more), ("shipments", delivered)):
        again = import_ok(kind, text)
        assert (again.created, again.updated) == (0, 0), kind


def test_a_new_shipment_on_its_way_is_emailed_but_history_is_not(accounts, mailbox):
    """Importing a shipment that left this week and is not delivered emails whoever accepted
    the order's quote (else the company), with the carrier's tracking link, over SMTP;
    delivered or older shipments, a re-import, and a customer without the portal send
    nothing."""
    from portal.models import OutboxMessage
    from portal.services import outbox, settings

    acme, birch = accounts["ACME01"], accounts["BIRCH01"]
    Customer.update(portal_enabled=True).where(Customer.id == birch.id).execute()
    pat = factories.portal_user(acme, email="pat@acme.example", first_name="Pat")
    quote = factories.quote(acme, status="accepted", number="Q-ACC", decided_by=pat)
    import_ok(
        "orders",
        "number,account_number,order_date,customer_po,quote_number\n"
        "SO-1,ACME01,2026-11-01,PO-77,Q-ACC\nSO-2,BIRCH01,2026-11-01,,\n",
    )
    today = date.today()
    recent, old = today.isoformat(), (today - timedelta(days=30)).isoformat()
    header = "order_number,number,shipped_on,carrier,tracking_number,delivered_on\n"
    shipments = header + (
        f"SO-1,SH-1,{recent},UPS,1Z 999,\n"
        f"SO-1,SH-2,{recent},UPS,1Z998,{recent}\n"
        f"SO-1,SH-3,{old},FedEx,7777,\n"
        f"SO-2,SH-4,{recent},,,\n"
    )
    mailbox.clear()
    import_ok("shipments", shipments)
    sent = list(OutboxMessage.select().where(OutboxMessage.kind == "shipment_sent"))
    assert sorted(m.to_addr for m in sent) == ["office@birchwood.example", "pat@acme.example"]
    outbox.deliver_due()
    messages = {m["To"]: m for m in mailbox.wait_for(2)}
    text = messages["pat@acme.example"].get_content()
    assert messages["pat@acme.example"]["Subject"] == "Your order SO-1 has shipped"
    assert "Hello Pat," in text and "SH-1" in text and "your PO PO-77" in text
    assert "https://www.ups.com/track?tracknum=1Z999" in text and "/orders/" in text
    assert "SH-2" not in text and "SH-3" not in text
    assert quote.number not in text

    import_ok("shipments", shipments)  # the same file again: nothing new, nothing sent
    assert OutboxMessage.select().where(OutboxMessage.kind == "shipment_sent").count() == 2
    Customer.update(portal_enabled=False).where(Customer.id == birch.id).execute()
    import_ok("shipments", header + f"SO-2,SH-5,{recent},,,\n")
    settings.save({"module_orders": False})
    import_ok("shipments", header + f"SO-1,SH-6,{recent},UPS,1Z1,\n")
    assert OutboxMessage.select().where(OutboxMessage.kind == "shipment_sent").count() == 2


def test_order_rows_are_checked_against_the_database(accounts):
    """Unknown accounts, sites, quotes, orders and items are named with their line; an order
    cannot move to another account; nothing is written when any row is bad."""
    from portal.models import SalesOrder

    factories.quote(accounts["BIRCH01"], status="accepted", number="Q-BIRCH")
    bad = run(
        "orders",
        "number,account_number,site_code,order_date,status,quote_number\n"
        "SO-9,NOPE,,2026-03-02,,\n"
        "SO-8,ACME01,ZZ,2026-03-02,,\n"
        "SO-7,ACME01,,2026-03-02,,Q-BIRCH\n"
        "SO-6,ACME01,,2026-03-02,,Q-NONE\n"
        "SO-5,ACME01,,03/02/2026,lost,\n",
    )
    assert bad.errors == [
        "line 2: unknown account_number NOPE",
        "line 3: unknown site_code ZZ for account ACME01",
        "line 4: quote Q-BIRCH is not a quote of account ACME01",
        "line 5: unknown quote_number Q-NONE",
        'line 6: order_date "03/02/2026" is not a date like 2025-01-31 (YYYY-MM-DD); status '
        '"lost" is not one of open, partially_shipped, shipped, closed, cancelled',
    ]
    assert SalesOrder.select().count() == 0
    import_ok("orders", "number,account_number,order_date\nSO-1,ACME01,2026-03-02\n")
    moved = run("orders", "number,account_number,order_date\nSO-1,BIRCH01,2026-03-02\n")
    assert moved.errors == ["line 2: order SO-1 is an order of account ACME01, not BIRCH01"]
    lines = run(
        "order_lines",
        "order_number,line,item_code,description,quantity\n"
        "SO-404,1,,Jig,1\nSO-1,1,GHOST,,1\nSO-1,2,,,1\nSO-1,3,,Jig,-1\n",
    )
    assert lines.errors == [
        "line 2: unknown order_number SO-404 (import the orders first)",
        "line 3: unknown item_code GHOST",
        "line 4: a line needs an item_code or a description",
        'line 5: quantity "-1" is not a quantity like 2 or 2.5 (at most three decimals)',
    ]
    ships = run("shipments", "order_number,number,shipped_on\nSO-404,SH-1,2026-03-02\n")
    assert ships.errors == ["line 2: unknown order_number SO-404 (import the orders first)"]


def test_importing_twice_is_a_no_op(accounts):
    files = {
        "customers": CUSTOMERS,
        "sites": "account_number,site_code,name\nACME01,P1,Plant 1\n",
        "contacts": "account_number,email,first_name,site_code\nACME01,x@acme.example,X,P1\n",
        "invoices": INVOICE_HEADER
        + "INV-1,ACME01,P1,2026-01-05,2026-02-04,10.00,1.00,USD,ABCD-EFGH-JKMN,2,10,x\n"
        + "INV-2,ACME01,,2026-01-05,2026-02-04,10.00,,,,,,\n",
        "products": "item_code,description,price\nB1,Bolt,1.00\n",
        "prices": "account_number,item_code,price\nACME01,B1,0.90\n",
    }
    for kind, text in files.items():
        import_ok(kind, text)
    snapshot = {
        m.__name__: list(m.select().order_by(m.id).dicts())
        for m in (Customer, Site, Contact, Invoice, Product, CustomerPrice)
    }
    audits = AuditLog.select().count()
    for kind, text in files.items():
        result = import_ok(kind, text)
        assert (result.created, result.updated) == (0, 0), kind
        assert result.unchanged > 0
    assert snapshot == {
        m.__name__: list(m.select().order_by(m.id).dicts())
        for m in (Customer, Site, Contact, Invoice, Product, CustomerPrice)
    }
    assert AuditLog.select().count() == audits


def test_a_good_import_is_audited_once(accounts):
    import_ok("products", "item_code,description,price\nB1,Bolt,1.00\nB2,Nut,2.00\n")
    entry = AuditLog.select().where(AuditLog.action == "import.products").get()
    assert json.loads(entry.detail) == {"created": 2, "updated": 0}
    assert entry.actor_kind == "system"


def test_two_thousand_invoices_import_in_one_go(accounts):
    """Bulk path: batched inserts, a code generated and hashed for every row."""
    issue = date.today() - timedelta(days=20)
    lines = [
        f"B{n:05d},{'ACME01' if n % 2 else 'BIRCH01'},,{issue},{issue + timedelta(days=30)},"
        f"{n}.25,,,,,,Line {n}"
        for n in range(1, 2001)
    ]
    result = import_ok("invoices", INVOICE_HEADER + "\n".join(lines) + "\n")
    assert result.created == 2000
    assert Invoice.select().count() == 2000
    assert Invoice.get(Invoice.number == "B01999").total_cents == 199925
    hashes = {i.quick_pay_hash for i in Invoice.select(Invoice.quick_pay_hash)}
    assert len(hashes) == 2000 and all(h.startswith("$argon2id$") for h in hashes)
    again = import_ok("invoices", INVOICE_HEADER + "\n".join(lines) + "\n")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2000)


def test_cli_import_reports_bad_lines_and_fails(accounts, runner, tmp_path):
    bad = tmp_path / "contacts.csv"
    bad.write_text("account_number,email\nACME01,a@acme.example\nACME01,nope\nXX,b@x.example\n")
    result = runner.invoke(args=["import", "contacts", str(bad)])
    assert result.exit_code != 0
    assert "line 3: email" in result.output and "line 4: unknown account_number XX" in result.output
    assert "nothing was imported" in result.output
    assert Contact.select().count() == 0

    good = tmp_path / "good.csv"
    good.write_text("account_number,email\nACME01,a@acme.example\n")
    result = runner.invoke(args=["import", "contacts", str(good)])
    assert result.exit_code == 0, result.output
    assert "contacts: 1 created, 0 updated" in result.output
    result = runner.invoke(args=["import", "contacts", str(good)])
    assert "contacts: 0 created, 0 updated" in result.output


def test_cli_import_refuses_an_unknown_kind(runner, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n")
    result = runner.invoke(args=["import", "widgets", str(path)])
    assert result.exit_code != 0


def test_a_file_that_is_not_utf8_is_refused_with_its_line(accounts, runner, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "account_number,email,first_name\nACME01,a@acme.example,Zoë\n".encode("latin-1")
    )
    result = runner.invoke(args=["import", "contacts", str(path)])
    assert result.exit_code != 0
    assert "line 2: cannot read this line" in result.output
    assert Contact.select().count() == 0


def test_many_codes_are_hashed_in_worker_processes(accounts, monkeypatch):
    """The parallel path of big imports: worker processes hash, every code still verifies."""
    monkeypatch.setattr(importer, "PARALLEL_HASH_THRESHOLD", 20)
    workers_seen = []
    real_hash_codes = importer.hash_codes

    def spy(codes, meanwhile=lambda: None, **options):
        def meanwhile_and_count():
            workers_seen.append(len(multiprocessing.active_children()))
            return meanwhile()

        return real_hash_codes(codes, meanwhile=meanwhile_and_count, **options)

    monkeypatch.setattr(importer, "hash_codes", spy)
    rows = [f"P{n:03d},ACME01,,2026-01-05,2026-02-04,{n}.00,,,,,," for n in range(1, 61)]
    result = import_ok("invoices", INVOICE_HEADER + "\n".join(rows) + "\n")
    assert result.created == 60
    for invoice in Invoice.select():
        code = unseal(invoice.quick_pay_sealed)
        assert invoice.quick_pay_hash.startswith("$argon2id$") and verify_code(
            invoice.quick_pay_hash, code
        )
    assert len({i.quick_pay_hash for i in Invoice.select()}) == 60
    assert workers_seen and workers_seen[0] >= 1  # not the inline fallback
