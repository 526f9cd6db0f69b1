"""Blueprints, one per capability; `create_app` registers them in this order."""

from .auth import bp as auth_bp
from .health import bp as health_bp
from .home import bp as home_bp
from .payments import bp as payments_bp
from .quickpay import bp as quickpay_bp
from .staff import bp as staff_bp
from .staff.staff_audit import bp as staff_audit_bp
from .staff.staff_autopay import bp as staff_autopay_bp
from .staff.staff_customers import bp as staff_customers_bp
from .staff.staff_import import bp as staff_import_bp
from .staff.staff_invoices import bp as staff_invoices_bp
from .staff.staff_orders import bp as staff_orders_bp
from .staff.staff_outbox import bp as staff_outbox_bp
from .staff.staff_payments import bp as staff_payments_bp
from .staff.staff_queue import bp as staff_queue_bp
from .staff.staff_settings import bp as staff_settings_bp
from .staff.staff_users import bp as staff_users_bp
from .test_checkout import bp as test_checkout_bp

BLUEPRINTS = [health_bp, home_bp, auth_bp, staff_bp, quickpay_bp, payments_bp, test_checkout_bp]

# The back office (issue 6), one blueprint per page family.
BLUEPRINTS += [
    staff_settings_bp,
    staff_customers_bp,
    staff_invoices_bp,
    staff_orders_bp,
    staff_import_bp,
    staff_payments_bp,
    staff_queue_bp,
    staff_outbox_bp,
    staff_audit_bp,
    staff_users_bp,
    staff_autopay_bp,
]

# The customer billing area (issue 5).
from .billing import bp as billing_bp  # noqa: E402
from .statements import bp as statements_bp  # noqa: E402

BLUEPRINTS += [billing_bp, statements_bp]

# Portal access (issue 4): registration, request access, passwords.
from .access import bp as access_bp  # noqa: E402
from .password import bp as password_bp  # noqa: E402
from .register import bp as register_bp  # noqa: E402

BLUEPRINTS += [register_bp, access_bp, password_bp]

# My account and company administration (issue 4).
from .account import bp as account_bp  # noqa: E402
from .autopay import bp as autopay_bp  # noqa: E402
from .company import bp as company_bp  # noqa: E402

BLUEPRINTS += [account_bp, company_bp, autopay_bp]

# Support cases, for customers and in the back office.
from .attachments import bp as attachments_bp  # noqa: E402
from .attachments import staff_bp as staff_attachments_bp  # noqa: E402
from .cases import bp as cases_bp  # noqa: E402
from .quick_request import bp as quick_request_bp  # noqa: E402
from .staff.staff_cases import bp as staff_cases_bp  # noqa: E402

BLUEPRINTS += [cases_bp, staff_cases_bp, attachments_bp, staff_attachments_bp, quick_request_bp]

# Requests for quote, quotes and orders, for customers and in the back office.
from .orders import bp as orders_bp  # noqa: E402
from .quotes import bp as quotes_bp  # noqa: E402
from .staff.staff_quotes import bp as staff_quotes_bp  # noqa: E402

BLUEPRINTS += [quotes_bp, orders_bp, staff_quotes_bp]

# B2B ordering (issue 20): the catalog at the customer's prices, the cart and checkout.
from .cart import bp as cart_bp  # noqa: E402
from .catalog import bp as catalog_bp  # noqa: E402

BLUEPRINTS += [catalog_bp, cart_bp]

# Keeping people informed (issue 18): one-click unsubscribe.
from .notices import bp as notices_bp  # noqa: E402

BLUEPRINTS += [notices_bp]

# Office alerts (issue 18): each staff login's own alert choices.
from .staff.staff_alerts import bp as staff_alerts_bp  # noqa: E402

BLUEPRINTS += [staff_alerts_bp]

# Staff "view as customer", read-only (issue 19).
from .staff.staff_view_as import bp as staff_view_as_bp  # noqa: E402

BLUEPRINTS += [staff_view_as_bp]

# One search over the account (issue 19).
from .search import bp as search_bp  # noqa: E402

BLUEPRINTS += [search_bp]
