"""The initial schema: every table of the domain, frozen as it was first designed."""
from peewee import *


def up(migrator, db):
    class AccessRequest(Model):
        name = CharField()
        company = CharField()
        email = CharField(max_length=320)
        phone = CharField(max_length=50, default='')
        account_number = CharField(max_length=50, default='')
        message = TextField(default='')
        status = CharField(index=True, max_length=10, default='pending')
        created_at = DateTimeField()
        decided_at = DateTimeField(null=True)
        ip = CharField(max_length=64, default='')
        class Meta:
            database = db
            table_name = 'access_request'
    db.create_tables([AccessRequest])

    class AuditLog(Model):
        at = DateTimeField(index=True)
        actor_kind = CharField(max_length=20)
        actor_id = IntegerField(null=True)
        actor_label = CharField(default='')
        action = CharField(index=True, max_length=100)
        object_type = CharField(max_length=50, default='')
        object_id = CharField(max_length=100, default='')
        detail = TextField(default='')
        ip = CharField(max_length=64, default='')
        class Meta:
            database = db
            table_name = 'audit_log'
    db.create_tables([AuditLog])

    class AuthThrottle(Model):
        scope = CharField(max_length=30)
        key_hash = CharField(max_length=64)
        window_start = DateTimeField()
        failures = IntegerField(default=0)
        day_start = DateTimeField()
        day_failures = IntegerField(default=0)
        locked_until = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'auth_throttle'
            indexes = ((('scope', 'key_hash'), True),)
    db.create_tables([AuthThrottle])

    class Customer(Model):
        account_number = CharField(unique=True, max_length=50)
        name = CharField()
        email = CharField(max_length=320, default='')
        phone = CharField(max_length=50, default='')
        address = TextField(default='')
        portal_enabled = BooleanField(default=True)
        allow_self_registration = BooleanField(default=False)
        auto_invite = BooleanField(default=False)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'customer'
    db.create_tables([Customer])

    class Site(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        site_code = CharField(max_length=50)
        name = CharField()
        address = TextField(default='')
        class Meta:
            database = db
            table_name = 'site'
            indexes = ((('customer', 'site_code'), True),)
    db.create_tables([Site])

    class Contact(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        site = ForeignKeyField(Site, null=True, on_delete='SET NULL')
        email = CharField(unique=True, null=True, max_length=320)
        first_name = CharField(max_length=100, default='')
        last_name = CharField(max_length=100, default='')
        phone = CharField(max_length=50, default='')
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'contact'
    db.create_tables([Contact])

    class PortalUser(Model):
        contact = ForeignKeyField(Contact, unique=True, on_delete='CASCADE')
        password_hash = CharField(null=True)
        status = CharField(index=True, max_length=10, default='invited')
        roles = CharField(default='')
        all_sites = BooleanField(default=True)
        auth_stamp = CharField(max_length=32)
        terms_version = IntegerField(null=True)
        created_at = DateTimeField()
        activated_at = DateTimeField(null=True)
        last_login_at = DateTimeField(null=True)
        invited_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'portal_user'
    db.create_tables([PortalUser])

    class Invoice(Model):
        number = CharField(unique=True, max_length=50)
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        site = ForeignKeyField(Site, null=True, on_delete='SET NULL')
        issue_date = DateField(index=True)
        due_date = DateField(index=True)
        total_cents = BigIntegerField()
        amount_paid_cents = BigIntegerField(default=0)
        discount_taken_cents = BigIntegerField(default=0)
        currency = CharField(max_length=3, default='USD')
        discount_bp = IntegerField(default=0)
        discount_days = IntegerField(default=0)
        description = TextField(default='')
        status = CharField(index=True, max_length=10, default='open')
        quick_pay_hash = CharField()
        quick_pay_sealed = CharField(default='')
        quick_pay_version = IntegerField(default=1)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        voided_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'invoice'
            constraints = [Check('total_cents >= 0'), Check('amount_paid_cents >= 0'), Check('discount_taken_cents >= 0'), Check('amount_paid_cents + discount_taken_cents <= total_cents')]
            indexes = ((('customer', 'status', 'due_date'), False),)
    db.create_tables([Invoice])

    class Rfq(Model):
        number = CharField(unique=True, max_length=30)
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        site = ForeignKeyField(Site, null=True, on_delete='SET NULL')
        portal_user = ForeignKeyField(PortalUser, null=True, on_delete='SET NULL')
        status = CharField(index=True, max_length=12, default='submitted')
        needed_by = DateField(null=True)
        notes = TextField(default='')
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'rfq'
    db.create_tables([Rfq])

    class Quote(Model):
        number = CharField(unique=True, max_length=30)
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        site = ForeignKeyField(Site, null=True, on_delete='SET NULL')
        rfq = ForeignKeyField(Rfq, null=True, on_delete='SET NULL')
        status = CharField(index=True, max_length=10, default='draft')
        valid_until = DateField(null=True)
        currency = CharField(max_length=3, default='USD')
        total_cents = BigIntegerField(default=0, constraints=[Check('total_cents >= 0')])
        notes = TextField(default='')
        decline_reason = TextField(default='')
        created_at = DateTimeField()
        published_at = DateTimeField(null=True)
        decided_at = DateTimeField(null=True)
        decided_by = ForeignKeyField(PortalUser, null=True, on_delete='SET NULL')
        class Meta:
            database = db
            table_name = 'quote'
    db.create_tables([Quote])

    class SalesOrder(Model):
        number = CharField(unique=True, max_length=30)
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        site = ForeignKeyField(Site, null=True, on_delete='SET NULL')
        quote = ForeignKeyField(Quote, null=True, on_delete='SET NULL')
        status = CharField(index=True, max_length=20, default='open')
        order_date = DateField()
        promised_date = DateField(null=True)
        customer_po = CharField(max_length=50, default='')
        currency = CharField(max_length=3, default='USD')
        total_cents = BigIntegerField(default=0, constraints=[Check('total_cents >= 0')])
        class Meta:
            database = db
            table_name = 'sales_order'
    db.create_tables([SalesOrder])

    class StaffUser(Model):
        email = CharField(unique=True, max_length=320)
        name = CharField(default='')
        password_hash = CharField()
        role = CharField(max_length=10, default='agent')
        active = BooleanField(default=True)
        auth_stamp = CharField(max_length=32)
        created_at = DateTimeField()
        last_login_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'staff_user'
    db.create_tables([StaffUser])

    class Case(Model):
        number = CharField(unique=True, max_length=30)
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        site = ForeignKeyField(Site, null=True, on_delete='SET NULL')
        portal_user = ForeignKeyField(PortalUser, null=True, on_delete='SET NULL')
        invoice = ForeignKeyField(Invoice, null=True, on_delete='SET NULL')
        order = ForeignKeyField(SalesOrder, null=True, on_delete='SET NULL')
        subject = CharField()
        status = CharField(index=True, max_length=10, default='new')
        priority = CharField(max_length=10, default='normal')
        assigned_to = ForeignKeyField(StaffUser, null=True, on_delete='SET NULL')
        created_at = DateTimeField()
        updated_at = DateTimeField()
        resolved_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'case'
    db.create_tables([Case])

    class CaseMessage(Model):
        case = ForeignKeyField(Case, on_delete='CASCADE')
        portal_user = ForeignKeyField(PortalUser, null=True, on_delete='SET NULL')
        staff_user = ForeignKeyField(StaffUser, null=True, on_delete='SET NULL')
        body = TextField()
        internal = BooleanField(default=False)
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'case_message'
    db.create_tables([CaseMessage])

    class Counter(Model):
        name = CharField(primary_key=True, max_length=50)
        value = BigIntegerField(default=0)
        class Meta:
            database = db
            table_name = 'counter'
    db.create_tables([Counter])

    class Product(Model):
        item_code = CharField(unique=True, max_length=50)
        description = CharField()
        unit = CharField(max_length=20, default='ea')
        price_cents = BigIntegerField(default=0, constraints=[Check('price_cents >= 0')])
        available_quantity = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'product'
    db.create_tables([Product])

    class CustomerPrice(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        product = ForeignKeyField(Product, on_delete='CASCADE')
        price_cents = BigIntegerField(constraints=[Check('price_cents >= 0')])
        class Meta:
            database = db
            table_name = 'customer_price'
            indexes = ((('customer', 'product'), True),)
    db.create_tables([CustomerPrice])

    class InvoiceLine(Model):
        invoice = ForeignKeyField(Invoice, on_delete='CASCADE')
        position = IntegerField(default=0)
        item_code = CharField(max_length=50, default='')
        description = CharField(max_length=500)
        quantity_milli = BigIntegerField(default=1000)
        unit_price_cents = BigIntegerField(default=0)
        amount_cents = BigIntegerField(default=0)
        class Meta:
            database = db
            table_name = 'invoice_line'
    db.create_tables([InvoiceLine])

    class LoginSession(Model):
        key_hash = CharField(unique=True, max_length=64)
        portal_user = ForeignKeyField(PortalUser, null=True, on_delete='CASCADE')
        staff_user = ForeignKeyField(StaffUser, null=True, on_delete='CASCADE')
        created_at = DateTimeField()
        last_seen_at = DateTimeField()
        expires_at = DateTimeField()
        revoked_at = DateTimeField(null=True)
        ip = CharField(max_length=64, default='')
        user_agent = CharField(default='')
        class Meta:
            database = db
            table_name = 'login_session'
            constraints = [Check('(portal_user_id IS NULL) <> (staff_user_id IS NULL)')]
    db.create_tables([LoginSession])

    class OutboxMessage(Model):
        created_at = DateTimeField()
        kind = CharField(max_length=50, default='')
        to_addr = CharField(max_length=320)
        subject = CharField(max_length=998)
        body_text = TextField()
        body_html = TextField(default='')
        status = CharField(index=True, max_length=10, default='queued')
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(index=True)
        last_error = TextField(default='')
        sent_at = DateTimeField(null=True)
        message_id = CharField(default='')
        class Meta:
            database = db
            table_name = 'outbox_message'
    db.create_tables([OutboxMessage])

    class PaymentAttempt(Model):
        key = CharField(unique=True, max_length=36)
        provider = CharField(max_length=30)
        status = CharField(index=True, max_length=12, default='pending')
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        portal_user = ForeignKeyField(PortalUser, null=True, on_delete='SET NULL')
        guest = BooleanField(default=False)
        payer_name = CharField(default='')
        payer_email = CharField(max_length=320, default='')
        amount_cents = BigIntegerField(constraints=[Check('amount_cents > 0')])
        currency = CharField(max_length=3)
        provider_session = CharField(unique=True, null=True)
        failure_reason = CharField(default='')
        client_ip = CharField(max_length=64, default='')
        created_at = DateTimeField()
        updated_at = DateTimeField()
        expires_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'payment_attempt'
    db.create_tables([PaymentAttempt])

    class Payment(Model):
        receipt_number = CharField(unique=True, max_length=30)
        attempt = ForeignKeyField(PaymentAttempt, unique=True, null=True, on_delete='RESTRICT')
        provider = CharField(max_length=30)
        provider_reference = CharField()
        customer = ForeignKeyField(Customer, on_delete='RESTRICT')
        amount_cents = BigIntegerField(constraints=[Check('amount_cents > 0')])
        currency = CharField(max_length=3)
        unapplied_cents = BigIntegerField(default=0)
        status = CharField(index=True, max_length=10, default='applied')
        flagged = BooleanField(index=True, default=False)
        flag_reason = CharField(default='')
        payer_name = CharField(default='')
        payer_email = CharField(max_length=320, default='')
        received_at = DateTimeField(index=True)
        posted_at = DateTimeField(index=True, null=True)
        voided_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'payment'
            constraints = [Check('unapplied_cents >= 0 AND unapplied_cents <= amount_cents')]
            indexes = ((('provider', 'provider_reference'), True),)
    db.create_tables([Payment])

    class PaymentApplication(Model):
        payment = ForeignKeyField(Payment, on_delete='CASCADE')
        invoice = ForeignKeyField(Invoice, on_delete='RESTRICT')
        amount_cents = BigIntegerField(constraints=[Check('amount_cents >= 0')])
        discount_cents = BigIntegerField(default=0, constraints=[Check('discount_cents >= 0')])
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'payment_application'
    db.create_tables([PaymentApplication])

    class PaymentAttemptItem(Model):
        attempt = ForeignKeyField(PaymentAttempt, on_delete='CASCADE')
        invoice = ForeignKeyField(Invoice, on_delete='RESTRICT')
        amount_cents = BigIntegerField(constraints=[Check('amount_cents >= 0')])
        discount_cents = BigIntegerField(default=0, constraints=[Check('discount_cents >= 0')])
        is_open = BooleanField(null=True, default=True)
        class Meta:
            database = db
            table_name = 'payment_attempt_item'
    db.create_tables([PaymentAttemptItem])

    class PortalUserSite(Model):
        user = ForeignKeyField(PortalUser, on_delete='CASCADE')
        site = ForeignKeyField(Site, on_delete='CASCADE')
        class Meta:
            database = db
            table_name = 'portal_user_site'
            indexes = ((('user', 'site'), True),)
    db.create_tables([PortalUserSite])

    class QuoteLine(Model):
        quote = ForeignKeyField(Quote, on_delete='CASCADE')
        position = IntegerField(default=0)
        product = ForeignKeyField(Product, null=True, on_delete='SET NULL')
        description = CharField(max_length=500)
        quantity_milli = BigIntegerField(default=1000)
        unit_price_cents = BigIntegerField(default=0)
        amount_cents = BigIntegerField(default=0)
        class Meta:
            database = db
            table_name = 'quote_line'
    db.create_tables([QuoteLine])

    class RfqLine(Model):
        rfq = ForeignKeyField(Rfq, on_delete='CASCADE')
        position = IntegerField(default=0)
        product = ForeignKeyField(Product, null=True, on_delete='SET NULL')
        description = CharField(max_length=500)
        quantity_milli = BigIntegerField(default=1000, constraints=[Check('quantity_milli > 0')])
        class Meta:
            database = db
            table_name = 'rfq_line'
    db.create_tables([RfqLine])

    class SalesOrderLine(Model):
        order = ForeignKeyField(SalesOrder, on_delete='CASCADE')
        position = IntegerField(default=0)
        product = ForeignKeyField(Product, null=True, on_delete='SET NULL')
        description = CharField(max_length=500)
        quantity_milli = BigIntegerField(default=1000)
        shipped_milli = BigIntegerField(default=0)
        unit_price_cents = BigIntegerField(default=0)
        amount_cents = BigIntegerField(default=0)
        class Meta:
            database = db
            table_name = 'sales_order_line'
    db.create_tables([SalesOrderLine])

    class Setting(Model):
        key = CharField(primary_key=True, max_length=100)
        value = TextField()
        class Meta:
            database = db
            table_name = 'setting'
    db.create_tables([Setting])

    class Shipment(Model):
        order = ForeignKeyField(SalesOrder, on_delete='CASCADE')
        number = CharField(unique=True, max_length=30)
        status = CharField(max_length=12, default='shipped')
        shipped_at = DateTimeField()
        delivered_at = DateTimeField(null=True)
        carrier = CharField(max_length=50, default='')
        tracking_number = CharField(max_length=100, default='')
        class Meta:
            database = db
            table_name = 'shipment'
    db.create_tables([Shipment])

    class TermsAcceptance(Model):
        user = ForeignKeyField(PortalUser, on_delete='CASCADE')
        version = IntegerField()
        accepted_at = DateTimeField()
        ip = CharField(max_length=64, default='')
        class Meta:
            database = db
            table_name = 'terms_acceptance'
    db.create_tables([TermsAcceptance])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('terms_acceptance'))
    migrator.migrate(migrator.drop_table('shipment'))
    migrator.migrate(migrator.drop_table('setting'))
    migrator.migrate(migrator.drop_table('sales_order_line'))
    migrator.migrate(migrator.drop_table('rfq_line'))
    migrator.migrate(migrator.drop_table('quote_line'))
    migrator.migrate(migrator.drop_table('portal_user_site'))
    migrator.migrate(migrator.drop_table('payment_attempt_item'))
    migrator.migrate(migrator.drop_table('payment_application'))
    migrator.migrate(migrator.drop_table('payment'))
    migrator.migrate(migrator.drop_table('payment_attempt'))
    migrator.migrate(migrator.drop_table('outbox_message'))
    migrator.migrate(migrator.drop_table('login_session'))
    migrator.migrate(migrator.drop_table('invoice_line'))
    migrator.migrate(migrator.drop_table('customer_price'))
    migrator.migrate(migrator.drop_table('product'))
    migrator.migrate(migrator.drop_table('counter'))
    migrator.migrate(migrator.drop_table('case_message'))
    migrator.migrate(migrator.drop_table('case'))
    migrator.migrate(migrator.drop_table('staff_user'))
    migrator.migrate(migrator.drop_table('sales_order'))
    migrator.migrate(migrator.drop_table('quote'))
    migrator.migrate(migrator.drop_table('rfq'))
    migrator.migrate(migrator.drop_table('invoice'))
    migrator.migrate(migrator.drop_table('portal_user'))
    migrator.migrate(migrator.drop_table('contact'))
    migrator.migrate(migrator.drop_table('site'))
    migrator.migrate(migrator.drop_table('customer'))
    migrator.migrate(migrator.drop_table('auth_throttle'))
    migrator.migrate(migrator.drop_table('audit_log'))
    migrator.migrate(migrator.drop_table('access_request'))
