"""Blueprints, one per capability; `create_app` registers them in this order."""

from .auth import bp as auth_bp
from .home import bp as home_bp
from .staff import bp as staff_bp

BLUEPRINTS = [home_bp, auth_bp, staff_bp]
