"""Checklist rows that are about how the whole portal is built rather than one feature:
D7 (session protection mode), G4 (no string-built SQL), G7 (no unchecked file reaches the
disk) and K4 (secrets never rendered, weak keys refused)."""

import re
from pathlib import Path

import pytest

from portal import create_app
from portal.models import Case, Invoice

from . import factories
from .conftest import login, staff_login

PORTAL = Path(__file__).resolve().parents[1] / "portal"


def test_d7_session_protection_is_basic_and_a_new_user_agent_keeps_the_session(client):
    """D7: "basic", not "strong" (which logs out mobile users whose IP or agent changes):
    a customer whose User-Agent changes mid-session stays signed in; the theft controls are
    the server-side session registry (D4) and the password-typed-recently rule (C6)."""
    assert client.application.login_manager.session_protection == "basic"
    factories.portal_user(email="pat@example.com")
    login(client, "pat@example.com")
    assert client.get("/", headers={"User-Agent": "Phone/1.0"}).status_code == 200
    assert client.get("/account/", headers={"User-Agent": "Phone/2.0"}).status_code == 200
    client.post("/logout")
    assert client.get("/account/").status_code == 302


SQL_BUILT_FROM_STRINGS = re.compile(
    r"""(execute_sql|\bSQL)\(\s*f["']"""  # an f-string handed to the database
    r"""|(execute_sql|\bSQL)\([^)\n]*(\.format\(|["']\s*%\s)"""  # str.format / % formatting
)


def test_g4_no_sql_is_built_by_string_formatting():
    """G4, static: no f-string, `.format` or `%` SQL anywhere in the portal's code."""
    findings = [
        f"{path.relative_to(PORTAL)}:{number}: {line.strip()}"
        for path in sorted(PORTAL.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SQL_BUILT_FROM_STRINGS.search(line)
    ]
    assert findings == []


@pytest.mark.parametrize("probe", ["' OR '1'='1", "x'; DROP TABLE invoice; --", "%' --", "\\"])
def test_g4_sql_metacharacters_in_searches_are_just_text(client, probe):
    """G4, dynamic: quotes, comments and wildcards typed into the customer's and the office's
    searches find nothing and break nothing."""
    customer = factories.customer()
    user = factories.portal_user(customer)
    factories.invoice(customer, number="INV-1")
    factories.invoice(factories.customer(), number="INV-THEIRS")
    login(client, user.email)
    page = client.get("/invoices/", query_string={"status": "all", "q": probe})
    assert page.status_code == 200 and "INV-THEIRS" not in page.get_data(as_text=True)
    client.post("/logout")
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")
    for url in ("/staff/invoices/", "/staff/customers/", "/staff/orders/", "/staff/quotes/list"):
        assert client.get(url, query_string={"q": probe}).status_code == 200, url
    assert Invoice.select().count() == 2


def test_g7_an_svg_or_a_path_in_a_file_name_is_never_stored(client, app):
    """G7: attachments are checked by content (tests/test_attachments.py). An SVG with a
    script, named with a path, is refused whichever field it comes in; nothing is written
    under the instance folder and no case is opened from the refused form."""
    user = factories.portal_user()
    login(client, user.email)
    before = {p for p in Path(app.instance_path).rglob("*")}
    for field in ("file", "files"):
        response = client.post(
            "/cases/new",
            data={
                "subject": "Broken part",
                "body": "See the photo.",
                field: (__import__("io").BytesIO(b"<svg onload=alert(1)>"), "../../x.svg"),
            },
            content_type="multipart/form-data",
        )
        if field == "files":
            assert response.status_code == 422 and "See the photo." in response.text
    after = {p for p in Path(app.instance_path).rglob("*")}
    assert not [p for p in after - before if p.suffix == ".svg" or p.name == "x.svg"]
    assert Case.select().where(Case.subject == "Broken part").count() <= 1


@pytest.mark.parametrize("key", ["dev", "changeme", "short-but-not-32-characters"])
def test_k4_startup_refuses_a_weak_secret_key(tmp_path, key):
    """K4: an explicit key that is a known default or shorter than 32 characters stops the
    app at start; no key at all is generated into the instance folder instead."""
    with pytest.raises(ValueError, match="PORTAL_SECRET_KEY is too weak"):
        create_app({"SECRET_KEY": key, "INSTANCE_PATH": str(tmp_path)})


def test_k4_no_page_of_the_back_office_renders_a_secret(make_app, mailbox):
    """K4: the secret key, the SMTP password in MAIL_URL and the webhook secret never
    appear in any page an admin can open."""
    from portal.db import db
    from portal.services.providers import get as provider

    app = make_app(MAIL_URL="smtp://mailer:Sm7p-pa55word-xyz@127.0.0.1:1")
    with app.app_context():
        db.connect(reuse_if_open=True)
        factories.staff(email="boss@example.com", admin=True)
        webhook = provider("test-checkout").webhook_secret().hex()
        client = app.test_client()
        staff_login(client, "boss@example.com")
        pages = [
            rule.rule
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/staff") and "GET" in rule.methods and not rule.arguments
        ]
        assert "/staff/settings/" in pages or "/staff/settings" in pages
        for url in pages:
            body = client.get(url).get_data(as_text=True)
            for secret in (app.config["SECRET_KEY"], "Sm7p-pa55word-xyz", webhook):
                assert secret not in body, url
