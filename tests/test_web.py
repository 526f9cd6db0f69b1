"""The web layer's promises: headers and CSP (checklist H1-H6), no inline script, cookies (D1,
D2), CSRF including htmx (F1, F2, F6), error pages as pages and fragments (K1), local htmx."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from flask import abort, url_for

from portal import assets, csrf
from portal.db import db
from portal.models import AuditLog, PortalUser
from portal.services.ratelimit import limiter

from . import factories
from .conftest import HX

STATUS_TITLES = {
    403: "You do not have access to this page",
    404: "Page not found",
    405: "That action is not allowed here",
    429: "Too many attempts",
    500: "Something went wrong on our side",
}


def add_error_routes(app):
    """Routes that end in each error the way real views do (abort, a limit, a crash)."""

    def fail(code):
        if code == 500:
            raise RuntimeError("secret internal detail /srv/doorstep/portal.py")
        abort(code)

    @limiter.limit("1 per minute")
    def limited():
        return "ok"

    app.add_url_rule("/_test/fail/<int:code>", "test_fail", fail)
    app.add_url_rule("/_test/limited", "test_limited", limited)
    return app


@pytest.fixture
def web(make_app, mailbox):
    """An app with CSRF on (as in production) and the error routes, in an app context."""
    app = add_error_routes(make_app(WTF_CSRF_ENABLED=True))
    with app.app_context():
        db.connect(reuse_if_open=True)
        yield app
        if not db.is_closed():
            db.close()


def html(response) -> str:
    return response.get_data(as_text=True)


def csrf_token_from(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


# --- crawl every simple GET page as guest, customer and staff ------------------------------

SKIP_ENDPOINTS = {"static", "htmx_js", "test_fail", "test_limited"}


def simple_get_urls(app) -> list[str]:
    """Every GET route without URL parameters that renders a page (not a download)."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.arguments or rule.endpoint in SKIP_ENDPOINTS:
            continue
        if rule.rule.endswith((".csv", ".pdf", ".js")):
            continue
        urls.append(rule.rule)
    return sorted(urls)


def crawl(app) -> list:
    """(who, url, response) for every simple page, for a guest, a customer and an admin."""
    customer = factories.customer()
    factories.portal_user(customer, email="pat@example.com")
    factories.invoice(customer)
    factories.staff(email="boss@example.com", admin=True)
    guest, pat, boss = app.test_client(), app.test_client(), app.test_client()
    # Sign in with a real token: CSRF is on in this app.
    for client, url, email in ((pat, "/login", "pat@example.com"), (boss, "/staff/login", None)):
        token = csrf_token_from(html(client.get(url)))
        email = email or "boss@example.com"
        data = {"email": email, "password": factories.PASSWORD, "csrf_token": token}
        assert client.post(url, data=data).status_code == 303
    found = []
    for who, client in (("guest", guest), ("customer", pat), ("staff", boss)):
        for url in simple_get_urls(app):
            found.append((who, url, client.get(url)))
            found.append((who, url + " (htmx)", client.get(url, headers=HX)))
    return found


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def test_every_page_has_the_security_headers_and_no_inline_script(web):
    """H1 (CSP, no inline script), H2, H3, H4 (no-store, Vary), H5: on every page we render,
    full and htmx, for a guest, a customer and staff."""
    pages = crawl(web)
    html_pages = [p for p in pages if p[2].mimetype == "text/html"]
    assert len(html_pages) >= 10
    for who, url, response in pages:
        where = f"{who} {url} ({response.status_code})"
        assert 200 <= response.status_code < 500, where  # every page renders for every role
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", where
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin", where
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", where
        assert "Access-Control-Allow-Origin" not in headers, where
        assert "X-Powered-By" not in headers, where
        if response.mimetype != "text/html" or response.status_code in (204, 302, 303):
            continue
        csp = headers["Content-Security-Policy"]
        for directive in (
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ):
            assert directive in csp, (where, directive)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
        assert response.mimetype_params.get("charset") == "utf-8", where
        assert headers["Cache-Control"] == "no-store", where
        assert "HX-Request" in response.vary, where
        body = html(response)
        assert not INLINE_SCRIPT.search(body), (where, INLINE_SCRIPT.search(body).group(0))
        assert not EVENT_HANDLER.search(body), (where, EVENT_HANDLER.search(body).group(0))
        assert not JS_URL.search(body), where
        assert " style=" not in body, where  # style-src 'self' would block it anyway


def test_no_template_has_inline_script_or_handlers():
    """H1: the templates themselves (also those the crawl cannot reach without ids) carry no
    inline script, event-handler attribute, javascript: URL or style attribute.

    Email layouts (templates/email/) may carry style attributes: they are never served under
    the site's CSP, and mail clients drop <style> blocks, so inline style is how an email
    keeps its look. They still carry no script, handler or javascript: URL."""
    templates = Path(__file__).resolve().parents[1] / "portal" / "templates"
    checked = 0
    for path in templates.rglob("*.html"):
        source = path.read_text(encoding="utf-8")
        checked += 1
        assert not INLINE_SCRIPT.search(source), path
        assert not EVENT_HANDLER.search(source), path
        assert not JS_URL.search(source), path
        if "email" not in path.relative_to(templates).parts:
            assert " style=" not in source, path
    assert checked >= 10


def test_hsts_only_over_https(make_app):
    """H2: HSTS with a year and subdomains when served over HTTPS; not over plain HTTP."""
    plain = make_app().test_client().get("/login")
    assert "Strict-Transport-Security" not in plain.headers
    app = make_app(BASE_URL="https://portal.example.com")
    response = app.test_client().get("/login", base_url="https://portal.example.com")
    hsts = response.headers["Strict-Transport-Security"]
    max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
    assert max_age >= 31536000 and "includeSubDomains" in hsts


def test_no_debugger_and_no_cors(web):
    """H5: no debug mode or Werkzeug console; H6: no CORS for a foreign origin."""
    client = web.test_client()
    assert web.debug is False
    assert client.get("/console").status_code == 404
    response = client.get("/login", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


# --- cookies ------------------------------------------------------------------------------


def set_cookies(response) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def test_cookies_are_httponly_and_samesite_lax(web):
    """D1: the session cookie (given to guests too, for the CSRF token) is HttpOnly, Lax."""
    client = web.test_client()
    cookies = set_cookies(client.get("/login"))
    assert cookies, "a guest gets a session cookie to hold the CSRF token"
    factories.portal_user(email="pat@example.com")
    token = csrf_token_from(html(client.get("/login")))
    signed_in = client.post(
        "/login",
        data={"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token},
    )
    cookies += set_cookies(signed_in)
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
        assert "Secure" not in cookie  # plain HTTP in development: Secure would lose it


def test_cookies_are_secure_when_base_url_is_https(make_app):
    """D1, D2: with an https BASE_URL the session and remember cookies are Secure."""
    app = make_app(BASE_URL="https://portal.example.com", WTF_CSRF_ENABLED=True)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    assert app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    assert app.config["REMEMBER_COOKIE_DURATION"].days <= 30
    response = app.test_client().get("/login", base_url="https://portal.example.com")
    cookies = set_cookies(response)
    assert cookies
    for cookie in cookies:
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- CSRF ---------------------------------------------------------------------------------


def test_post_without_token_is_refused(web):
    """F1: a guest form POST without a CSRF token is refused with a readable 400 page."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    client.get("/login")
    response = client.post("/login", data={"email": "pat@example.com", "password": "x"})
    assert response.status_code == 400
    assert "Reload the page and try again" in html(response)
    response = client.post(
        "/login",
        data={"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": "forged"},
    )
    assert response.status_code == 400


def test_every_post_route_requires_the_token(web):
    """F1, F6: every POST route except the payment webhooks and the one-click unsubscribe
    refuses a request without a token."""
    client = web.test_client()
    client.get("/login")
    exempt = set()
    for rule in web.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        view = web.view_functions[rule.endpoint]
        if f"{view.__module__}.{view.__name__}" in csrf._exempt_views:
            exempt.add(rule.endpoint)
            continue
        with web.test_request_context():
            url = url_for(rule.endpoint, **dict.fromkeys(rule.arguments, 1))
        response = client.post(url, data={"anything": "x"})
        assert response.status_code == 400, (url, response.status_code)
    # Only the provider webhooks (signed by the provider, no browser involved, I8) and the
    # RFC 8058 one-click unsubscribe, which a mail provider POSTs with no form: its URL's
    # signed token is the authority and it can only turn one notice off.
    assert exempt == {"payments.webhook", "payments.stripe_webhook", "notices.unsubscribe_post"}


def test_form_post_with_the_token_is_accepted(web):
    """F1: the token from the page lets the same POST through."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    token = csrf_token_from(html(client.get("/login")))
    response = client.post(
        "/login",
        data={"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303


def test_htmx_post_with_the_header_token_is_accepted(web):
    """F2: htmx sends the token as X-CSRFToken (hx-headers on #app); no form field needed."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    page = html(client.get("/login"))
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page).group(1)
    data = {"email": "pat@example.com", "password": factories.PASSWORD}
    refused = client.post("/login", data=data, headers=HX)
    assert refused.status_code == 400
    response = client.post("/login", data=data, headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/"


def test_a_cross_site_post_is_refused_even_with_a_valid_token(web):
    """F5: Fetch Metadata: a browser's cross-site POST gets 403 before any view runs."""
    user = factories.portal_user(email="pat@example.com")
    client = web.test_client()
    token = csrf_token_from(html(client.get("/login")))
    data = {"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token}
    response = client.post("/login", data=data, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert "sent from another website" in html(response)
    assert PortalUser.get_by_id(user.id).last_login_at is None
    for same in ("same-origin", "none"):  # typed address or own page: allowed
        other = web.test_client()
        token = csrf_token_from(html(other.get("/login")))
        data["csrf_token"] = token
        assert other.post("/login", data=data, headers={"Sec-Fetch-Site": same}).status_code == 303


def test_an_expired_token_on_an_htmx_post_reloads_the_page_with_a_notice(web):
    """F4: a page left open past WTF_CSRF_TIME_LIMIT: the htmx POST does not fail silently,
    it answers HX-Refresh and the reloaded page says why."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    page = html(client.get("/login"))
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page).group(1)
    later = datetime.now(UTC) + web.config["WTF_CSRF_TIME_LIMIT"] * timedelta(seconds=1)
    with time_machine.travel(later + timedelta(minutes=1)):
        response = client.post(
            "/login",
            data={"email": "pat@example.com", "password": factories.PASSWORD},
            headers={**HX, "X-CSRFToken": token},
        )
        assert response.status_code == 400
        assert response.headers["HX-Refresh"] == "true"
        assert "open a long time, so it was reloaded" in html(client.get("/login"))


def test_https_post_with_the_referer_the_policy_sends(make_app):
    """H3: over HTTPS flask-wtf checks the Referer; strict-origin-when-cross-origin keeps it."""
    app = make_app(BASE_URL="https://portal.example.com", WTF_CSRF_ENABLED=True)
    with app.app_context():
        factories.portal_user(email="pat@example.com")
    client = app.test_client()
    base = "https://portal.example.com"
    token = csrf_token_from(html(client.get("/login", base_url=base)))
    data = {"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token}
    no_referer = client.post("/login", data=data, base_url=base)
    assert no_referer.status_code == 400
    response = client.post("/login", data=data, base_url=base, headers={"Referer": base + "/"})
    assert response.status_code == 303


# --- error pages --------------------------------------------------------------------------


def error_url(code: int) -> str:
    return f"/_test/fail/{code}"


@pytest.mark.parametrize("code", [403, 404, 405, 429, 500])
def test_error_pages_are_full_pages_and_fragments(web, code):
    """K1: every error is a generic page in the layout, or only the content for htmx, and
    says Vary: HX-Request so a cache never mixes the two."""
    client = web.test_client()
    page = client.get(error_url(code))
    fragment = client.get(error_url(code), headers=HX)
    for response in (page, fragment):
        assert response.status_code == code
        assert STATUS_TITLES[code] in html(response)
        assert "HX-Request" in response.vary
        assert response.headers["Cache-Control"] == "no-store"
        assert "Content-Security-Policy" in response.headers
    assert html(page).lstrip().lower().startswith("<!doctype html>")
    assert 'class="topbar"' in html(page)
    assert "<html" not in html(fragment) and 'class="topbar"' not in html(fragment)
    assert f"Error {code}" in html(fragment)


def test_real_404_405_and_429(web):
    """K1 with real causes: an unknown URL, a wrong method, a rate limit."""
    client = web.test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and STATUS_TITLES[404] in html(missing)
    wrong = client.get("/logout")
    assert wrong.status_code == 405 and STATUS_TITLES[405] in html(wrong)
    assert "POST" in wrong.headers["Allow"]
    assert client.get("/_test/limited").status_code == 200
    limited = client.get("/_test/limited", headers=HX)
    assert limited.status_code == 429
    assert STATUS_TITLES[429] in html(limited) and "<html" not in html(limited)
    assert "per 1 minute" not in html(limited)  # the limiter's wording stays out
    assert int(limited.headers["Retry-After"]) > 0


def test_500_page_hides_the_details_and_gives_a_reference(web, caplog):
    """K1: no stack trace, path or message; a reference the log also has."""
    response = web.test_client().get(error_url(500))
    body = html(response)
    assert "secret internal detail" not in body and "/srv/doorstep" not in body
    assert "Traceback" not in body
    reference = re.search(r"Reference: <code>([0-9a-f]+)</code>", body).group(1)
    assert any(reference in record.getMessage() for record in caplog.records)
    assert response.headers["X-Request-Id"] == reference  # K2: one id across page and logs


def test_signed_in_error_pages_keep_the_navigation(web):
    """K1: an error page is a real page of the portal: signed in, the navigation stays."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    token = csrf_token_from(html(client.get("/login")))
    data = {"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token}
    assert client.post("/login", data=data).status_code == 303
    page = html(client.get("/no/such/page"))
    assert 'aria-label="Main"' in page and "Sign out" in page


# --- htmx served locally ------------------------------------------------------------------


def test_htmx_is_served_from_the_installed_package(web):
    """docs/design.md: htmx comes from the pinned htmx.org npm package, verified at install
    (portal/assets.py; tests/test_ops.py), never a CDN or a copy in git."""
    url = f"/static/vendor/htmx-{assets.HTMX_VERSION}.min.js"
    response = web.test_client().get(url)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.get_data() == assets.HTMX_FILE.read_bytes()
    assert f'version:"{assets.HTMX_VERSION}"'.encode() in response.get_data()
    page = html(web.test_client().get("/login"))
    assert f'<script src="{url}" defer></script>' in page
    assert not re.search(r"<script[^>]+src=\"https?://", page)


@pytest.mark.parametrize(("proxies", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_client_address_comes_from_the_trusted_proxy_hop_only(make_app, proxies, expected):
    """K5: with one trusted proxy, the address it appended counts, never the client-supplied
    left part of X-Forwarded-For; with none configured the header is ignored. Throttles and
    the audit log use that address."""

    app = make_app(TRUSTED_PROXIES=proxies)
    with app.app_context():
        factories.portal_user(email="pat@example.com")
        client = app.test_client()
        client.post(
            "/login",
            data={"email": "pat@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        entry = AuditLog.get(AuditLog.action == "auth.sign_in_failed")
        assert entry.ip == expected


def test_security_events_are_log_lines_with_the_request_id(web, caplog):
    """K2: every audited event is also a log line naming the action, actor, address and
    the request's correlation id (the X-Request-Id header); never the typed secrets."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    token = csrf_token_from(html(client.get("/login")))
    caplog.clear()
    response = client.post(
        "/login",
        data={"email": "pat@example.com", "password": "hunter2-wrong", "csrf_token": token},
    )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit ")]
    assert len(lines) == 1
    assert lines[0].startswith("audit auth.sign_in_failed actor=guest:- ip=127.0.0.1 ")
    assert lines[0].endswith(f"request={response.headers['X-Request-Id']}")
    assert "hunter2" not in " ".join(r.getMessage() for r in caplog.records)


def test_an_action_that_rolls_back_leaves_no_audit_line(web, caplog):
    """K2: the log line follows the audit row: written when the transaction commits,
    not at all when it rolls back."""
    from portal.db import write_txn
    from portal.services import audit

    caplog.clear()
    with pytest.raises(RuntimeError), write_txn():
        audit.record("test.rolled_back")
        assert "test.rolled_back" not in caplog.text  # not before the commit either
        raise RuntimeError("the action failed after auditing")
    assert "test.rolled_back" not in caplog.text
    assert not AuditLog.select().where(AuditLog.action == "test.rolled_back").exists()
    with write_txn():
        audit.record("test.committed")
        assert "test.committed" not in caplog.text
    assert "audit test.committed actor=system:-" in caplog.text
    audit.record("test.outside")  # no transaction open: logged at once
    assert "audit test.outside" in caplog.text


def test_a_line_break_in_the_url_cannot_forge_a_log_line(web, caplog):
    """E7/K2: URL text in the access-denied line is escaped, one event stays one line."""
    factories.portal_user(email="pat@example.com")
    client = web.test_client()
    token = csrf_token_from(html(client.get("/login")))
    client.post(
        "/login",
        data={"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token},
    )
    caplog.clear()
    forged = "abc%0A2026-01-01 INFO portal.audit: audit auth.signed_in actor=staff:1"
    assert client.get(f"/invoices/1{forged}").status_code == 404
    assert client.get(f"/payments/{forged}").status_code == 404
    messages = [r.getMessage() for r in caplog.records if "access denied" in r.getMessage()]
    assert messages and all("\n" not in m for m in messages)
    assert any("abc\\n2026-01-01" in m for m in messages)


def test_the_invoice_pages_pay_button_carries_a_valid_csrf_token(web):
    """F1: the one-invoice pay form posts the session's token (CSRF on, as in production);
    a forged one is refused."""
    customer = factories.customer()
    factories.portal_user(customer, email="pat@example.com")
    invoice, _ = factories.invoice(customer)
    client = web.test_client()
    token = csrf_token_from(html(client.get("/login")))
    data = {"email": "pat@example.com", "password": factories.PASSWORD, "csrf_token": token}
    assert client.post("/login", data=data).status_code == 303
    page = html(client.get(f"/invoices/{invoice.public_id}"))
    form = re.search(
        r'<form method="post" action="/invoices/review" class="pay-one[^"]*">(.*?)</form>',
        page,
        re.S,
    )
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))
    assert set(fields) == {"csrf_token", "invoice", "action"}
    review = client.post("/invoices/review", data=fields)
    assert review.status_code == 200 and "Review your payment" in html(review)
    forged = client.post("/invoices/review", data={**fields, "csrf_token": "forged"})
    assert forged.status_code == 400


def test_links_follow_where_the_portal_is_mounted(app, client):
    """Templates remember the links they build, per mount point: the same page served
    under /portal and at the root links to each its own way."""
    root = html(client.get("/login"))
    mounted = html(client.get("/login", environ_overrides={"SCRIPT_NAME": "/portal"}))
    assert 'href="/static/css/portal.css' in root
    assert 'href="/portal/static/css/portal.css' in mounted
    assert 'href="/static/css/portal.css' in html(client.get("/login"))
