"""Blueprints, one per capability; `create_app` registers them in this order."""

from .auth import bp as auth_bp
from .home import bp as home_bp
from .payments import bp as payments_bp
from .quickpay import bp as quickpay_bp
from .staff import bp as staff_bp
from .staff.staff_settings import bp as staff_settings_bp
from .test_checkout import bp as test_checkout_bp

BLUEPRINTS = [home_bp, auth_bp, staff_bp, quickpay_bp, payments_bp, test_checkout_bp]

# The back office (issue 6), one blueprint per page family.
BLUEPRINTS += [staff_settings_bp]
