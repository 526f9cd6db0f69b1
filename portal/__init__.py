"""Doorstep: a self-hosted customer self-service portal for small businesses."""

import logging
import os

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config, db, ids

csrf = CSRFProtect()
htmx = Htmx()


def create_app(overrides: dict | None = None) -> Flask:
    """Build the portal application; `overrides` (tests) win over the environment."""
    overrides = dict(overrides or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or os.environ.get("PORTAL_INSTANCE_PATH")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_object(config.Defaults)
    app.config.from_prefixed_env("PORTAL")
    app.config.update(overrides)
    config.finalize(app)

    if app.config["TRUSTED_PROXIES"]:
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    _log_to_stderr()
    db.init_app(app)
    from .models import declare_postgres_indexes

    declare_postgres_indexes(postgres=not db.is_sqlite())
    ids.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)

    from . import auth, cli, errors, filters, web
    from .services import outbox, ratelimit

    auth.init_app(app)
    ratelimit.init_app(app)
    filters.init_app(app)
    web.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    app.after_request(outbox.after_request)

    from .views import BLUEPRINTS

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


def _log_to_stderr() -> None:
    """The portal's own log lines (audit events at INFO, access denied, errors) go to stderr,
    where gunicorn, systemd and container runtimes collect them, unless the host
    application configured the `portal` logger itself."""
    logger = logging.getLogger("portal")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
