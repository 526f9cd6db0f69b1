"""G5: hostile input on every form gets a clear 4xx (or the form again), never a 500.

Each page's own forms are read from its HTML and sent back with every text field filled
with an over-long value, a NUL byte, Unicode look-alikes or right-to-left marks, on
SQLite and on PostgreSQL (which refuses NUL in text: the portal must refuse it first).
"""

import re
from html import unescape

import pytest

from . import factories
from .conftest import login, staff_login

GUEST = ["/login", "/pay/", "/register/", "/request-access/", "/password/forgot"]
CUSTOMER = ["/account/", "/cases/new", "/quotes/requests/new", "/company/users/new", "/invoices/"]
STAFF = [
    "/staff/customers/new",
    "/staff/invoices/new",
    "/staff/settings/",
    "/staff/users/new",
    "/staff/customers/",
]
HOSTILE = {
    "nul": "abc\x00def",
    "long": "x" * 20_000,
    "confusable": "ІNV-1０42 аdmin@ехаmple.com",  # Cyrillic and full-width look-alikes
    "bidi": "\u202eevil\u202c@example.com",
}
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
FIELD = re.compile(r"<(input|textarea|select)\b([^>]*)>", re.S)


def attr(tag: str, name: str) -> str | None:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    return unescape(found.group(1)) if found else None


def forms_of(page: str, here: str) -> list[tuple[str, dict]]:
    """(action, fields) of each POST form: text fields get a placeholder, others their value."""
    forms = []
    for head, body in FORM.findall(page):
        if (attr(head, "method") or "get").lower() != "post":
            continue
        fields = {}
        for kind, tag in FIELD.findall(body):
            name = attr(tag, "name")
            if not name or name == "csrf_token":
                continue
            typ = (attr(tag, "type") or "text").lower()
            if kind == "select" or typ in ("checkbox", "radio", "hidden", "submit", "file"):
                fields.setdefault(name, attr(tag, "value") or "")
            else:
                fields[name] = None  # a free-text field: filled with the hostile value
        forms.append((attr(head, "action") or here, fields))
    return forms


def probe(client, url: str) -> list:
    page = client.get(url)
    assert page.status_code == 200, url
    failures = []
    for action, fields in forms_of(page.get_data(as_text=True), url):
        if not any(v is None for v in fields.values()):
            continue
        for label, value in HOSTILE.items():
            data = {k: (value if v is None else v) for k, v in fields.items()}
            status = client.post(action, data=data).status_code
            if status >= 500 or status not in (200, 303, 400, 403, 413, 422, 429):
                failures.append((url, action, label, status))
    return failures


@pytest.mark.parametrize("who", ["guest", "customer", "staff"])
def test_hostile_input_never_causes_a_server_error(app, client, who):
    """G5: over-long, NUL, confusable and bidi input on every form: 4xx or the form, no 500."""
    if who == "customer":
        login(client, factories.portal_user(email="pat@example.com").email)
    if who == "staff":
        staff_login(client, factories.staff(email="boss@example.com", admin=True).email)
    urls = {"guest": GUEST, "customer": CUSTOMER, "staff": STAFF}[who]
    failures = [f for url in urls for f in probe(client, url)]
    assert failures == []


def test_a_nul_byte_is_refused_with_a_clear_answer(client):
    response = client.post("/pay/", data={"invoice_number": "INV\x001", "code": "x"})
    assert response.status_code == 400
    assert "cannot contain" in response.get_data(as_text=True)


def test_a_body_over_the_limit_is_refused(app, client):
    """G5: MAX_CONTENT_LENGTH bounds every request body (413, not a crash)."""
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    response = client.post("/login", data={"email": "a@example.com", "password": "p" * 2_000_000})
    assert response.status_code == 413


def test_a_nul_byte_in_the_path_is_refused_before_any_view(client):
    """On PostgreSQL a NUL in a URL argument would reach the driver and fail with a 500."""
    response = client.get("/payments/ab%00cd")
    assert response.status_code == 400


def test_a_sort_key_has_one_spelling(app):
    """The sort is part of a prepared query's shape: "--due" must not compile another copy."""
    from portal.services import billing

    assert billing.ListParams.from_args({"status": "all", "sort": "--due"}).sort == "-issued"
    assert billing.ListParams.from_args({"status": "all", "sort": "-due"}).sort == "-due"
    assert billing.ListParams.from_args({"status": "open", "sort": "due"}).sort == "due"
