"""Page-or-fragment rendering, security headers, htmx assets and the template context."""

from functools import lru_cache
from urllib.parse import quote

import markdown
import nh3
from flask import (
    abort,
    current_app,
    has_request_context,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_login import current_user
from jinja2_fragments.flask import render_block
from markupsafe import Markup

from . import assets
from .request_ids import request_id
from .services import settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def page_number(name: str = "page") -> int:
    """The `page` (or `name`) query argument as a positive integer (1 when absent or junk)."""
    try:
        return max(1, int(request.args.get(name, "1")))
    except ValueError:
        return 1


def choice(name: str, allowed, default: str) -> str:
    """A query argument that must be one of `allowed` (a filter tab); else `default`."""
    value = request.args.get(name, default)
    return value if value in allowed else default


def search_text() -> str:
    """The `q` query argument of a list's search box, trimmed to 100 characters."""
    return request.args.get("q", "").strip()[:100]


def wants_fragment() -> bool:
    """A fragment only for a targeted htmx request: not boosted, not a history restore."""
    hx = request.htmx
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(template: str, block: str | None = None, status: int = 200, **context):
    """Render the full page, or only `block` of it for an htmx request (STYLE 9, 10)."""
    if block and wants_fragment():
        html = render_block(template, block, **context)
        if session.get("_flashes"):
            # Notices reach the page out-of-band, into the flash region (STYLE 12).
            html += render_template("_flashes.html", oob=True)
    else:
        html = render_template(template, **context)
    response = make_response(html, status)
    response.vary.add("HX-Request")
    return response


def absolute_url(endpoint: str, **values) -> str:
    """An absolute link for emails, built on PORTAL_BASE_URL and never on the request's Host
    header, which a client controls (host-header poisoning of emailed links); also outside a
    request (a CLI import's emails)."""
    if not has_request_context():
        with current_app.test_request_context():
            return absolute_url(endpoint, **values)
    return current_app.config["BASE_URL"].rstrip("/") + url_for(endpoint, **values)


# What a URL may keep as it is in a header: the reserved and unreserved characters of RFC
# 3986 and `%` (an escape already made); everything else, non-ASCII first, is percent-encoded.
URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"


def header_url(url: str) -> str:
    """`url` as a header value may carry it: HTTP headers are Latin-1 at best (gunicorn
    refuses anything else and answers an empty 500), so `next=/invoices?q=Ü` or a path with
    a space must be percent-encoded as UTF-8 before it reaches `HX-Redirect`, `HX-Location`
    or `Location`."""
    return quote(url, safe=URL_SAFE)


def hx_redirect(url: str, status: int = 204):
    """An empty answer that sends htmx to `url` with a full page load (`HX-Redirect`)."""
    response = make_response("", status)
    response.headers["HX-Redirect"] = header_url(url)
    return response


def redirect_to(url: str):
    """After a successful POST: 303 (post/redirect/get), or `HX-Redirect` for a targeted htmx
    request, whose swap would otherwise put a whole page inside a fragment (STYLE 12)."""
    if wants_fragment():
        return hx_redirect(url)
    return redirect(header_url(url), code=303)


def redirect_away(url: str):
    """After a POST that sends the browser to another site (a payment provider's page): any
    htmx request, boosted too, gets `HX-Redirect`, a full page load; a 303 would be followed
    by htmx's own request, which the Content-Security-Policy (connect-src 'self') blocks."""
    if request.headers.get("HX-Request") == "true":
        return hx_redirect(url)
    return redirect(header_url(url), code=303)


def security_headers(response):
    """Headers on every response (checklist H1-H6); no-store on every page we render."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    # No view sets these, so they are appended in one go rather than set one by one.
    headers.extend(FIXED_HEADERS)
    headers["X-Request-Id"] = request_id()
    if request.is_secure or current_app.config["PREFERRED_URL_SCHEME"] == "https":
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.endpoint != "static" and request.endpoint != "htmx_js":
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("HX-Request")
    return response


FIXED_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
]


def refuse_cross_site():
    """Checklist F5: a browser that says a state-changing request comes from another site
    (Fetch Metadata) is refused before any view runs. SameSite=Lax cookies and CSRF tokens
    remain the main defences; servers calling the webhook send no such header."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            abort(403, "This form was sent from another website, so it was not accepted.")


def refuse_nul():
    """Checklist G5: no text with a NUL character reaches a view. PostgreSQL cannot store
    it (the driver raises, a 500), SQLite would store it and cut strings short elsewhere;
    a person never means to type one."""
    values = [[request.path], *request.args.listvalues()]
    # The webhook is signed over its raw body: parsing it as a form here would use it up.
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.endpoint not in RAW_BODY:
        values = [*values, *request.form.listvalues()]
    if any("\x00" in value for group in values for value in group):
        abort(400, "Form fields cannot contain NUL characters. Remove them and try again.")


# Endpoints that read the request body themselves (signature checks over the raw bytes).
RAW_BODY = {"payments.webhook"}


def htmx_js():
    """htmx from the pinned, integrity-checked htmx.org package (`portal.assets`), never a
    CDN; its URL names the version, so browsers may keep it for a year."""
    if not assets.HTMX_FILE.exists():
        current_app.logger.error("htmx is missing: run `make install` (python portal/assets.py)")
        abort(404)
    return send_file(assets.HTMX_FILE, mimetype="text/javascript", max_age=365 * 86400)


# (endpoint, label, role or None, settings module switch or None)
CUSTOMER_NAV = [
    ("home.index", "Home", None, None),
    ("billing.index", "Invoices", "invoices", "invoices"),
    ("statements.index", "Statements", "statements", "statements"),
    ("quotes.index", "Quotes", "quotes", "quotes"),
    ("catalog.index", "Catalog", "orders", "orders"),
    ("orders.index", "Orders", "orders", "orders"),
    ("cases.index", "Support", "cases", "cases"),
    ("company.index", "Company", "company_admin", None),
    ("account.index", "My account", None, None),
]
STAFF_NAV = [
    ("staff.index", "Overview", False),
    ("staff_customers.index", "Customers", False),
    ("staff_invoices.index", "Invoices", False),
    ("staff_payments.index", "Payments", False),
    ("staff_cases.index", "Cases", False),
    ("staff_quotes.index", "Quotes", False),
    ("staff_orders.index", "Orders", False),
    ("staff_queue.index", "Requests", False),
    ("staff_outbox.index", "Email", False),
    ("staff_audit.index", "Audit log", True),
    ("staff_users.index", "Staff", True),
    ("staff_settings.edit", "Settings", True),
]
AUTH_LINKS = [
    ("quickpay.new", "Pay an invoice without signing in", "quick_pay_enabled"),
    ("register.new", "Register with an invoice", "self_registration"),
    ("access.new", "Request access", "request_access"),
    ("password.forgot", "Forgot password?", None),
]


def has_endpoint(endpoint: str) -> bool:
    """True when a blueprint providing `endpoint` is registered."""
    return endpoint in current_app.view_functions


def nav_items() -> list[dict]:
    """The navigation the current user's roles allow, for the pages that exist."""
    user = current_user._get_current_object()
    if not user.is_authenticated:
        return []
    values = settings.load()
    if user.is_staff:
        rows = [(e, label) for e, label, admin in STAFF_NAV if not admin or user.is_admin]
    else:
        rows = [
            (e, label)
            for e, label, role, module in CUSTOMER_NAV
            if (role is None or user.has_role(role))
            and (module is None or values[f"module_{module}"])
        ]
    current_bp = request.blueprint
    return [
        {
            "endpoint": e,
            "label": label,
            "url": template_url_for(e),
            "current": e.split(".")[0] == current_bp,
        }
        for e, label in rows
        if has_endpoint(e)
    ]


def template_url_for(endpoint: str, **values) -> str:
    """`url_for` for templates, remembering each link it has built.

    A page builds the same links on every request (the layout's assets and navigation,
    the list's row links), and building one walks Werkzeug's URL map: a few microseconds
    each, a tenth of a millisecond or more per page. A link is a pure function of the
    endpoint, its values and where the app is mounted, so it is kept under exactly those.
    External links, anchors and anything unhashable go straight to Flask.
    """
    if endpoint.startswith(".") or any(name.startswith("_") for name in values):
        return url_for(endpoint, **values)
    try:
        return _built_url(current_app.url_map, request.script_root, endpoint, tuple(values.items()))
    except TypeError:  # an unhashable value (a list): build it every time
        return url_for(endpoint, **values)


@lru_cache(maxsize=8192)
def _built_url(url_map, script_root: str, endpoint: str, items: tuple) -> str:
    return url_for(endpoint, **dict(items))


def auth_links() -> list[dict]:
    """Links under the sign-in form, each only when its feature is enabled."""
    values = settings.load()
    return [
        {"url": url_for(e), "label": label}
        for e, label, switch in AUTH_LINKS
        if has_endpoint(e) and (switch is None or values[switch])
    ]


def qr_svg(link: str) -> str:
    """An inline SVG QR code of a link (segno; no image files, no external service)."""
    import segno

    qr = segno.make(link, error="m")
    return qr.svg_inline(scale=3, border=2, dark="#172033", omitsize=False)


@lru_cache(maxsize=128)
def markdown_filter(text: str) -> Markup:
    """Staff-written Markdown to sanitized HTML (nh3 allow-list; links get rel=noopener).

    Cached by text: the bulletin and login message are rendered on every home and sign-in
    page, the same few texts each time, and a conversion costs more than the page's queries.
    """
    html = markdown.markdown(text or "", extensions=["sane_lists"])
    return Markup(nh3.clean(html, tags=MARKDOWN_TAGS, link_rel="noopener noreferrer"))


MARKDOWN_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "ul",
    "ol",
    "li",
    "a",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "code",
    "pre",
    "hr",
}


def template_context():
    return {"portal": settings.load()}


def init_app(app) -> None:
    app.before_request(refuse_cross_site)
    app.before_request(refuse_nul)
    app.after_request(security_headers)
    app.context_processor(template_context)
    app.add_url_rule(f"/static/vendor/htmx-{assets.HTMX_VERSION}.min.js", "htmx_js", htmx_js)
    app.jinja_env.globals.update(
        nav_items=nav_items,
        auth_links=auth_links,
        has_endpoint=has_endpoint,
        url_for=template_url_for,
    )
    app.jinja_env.filters["markdown"] = markdown_filter
