"""Portal settings in the back office: admins only, validated, audited, in effect at once;
email templates with placeholders, preview and a test send that reaches the SMTP server."""

import json

import pytest

from portal.models import AuditLog, OutboxMessage, Setting
from portal.services import email_templates, settings

from . import factories
from .conftest import HX, staff_login

URL = "/staff/settings/"


def form_data(**overrides) -> dict:
    """The settings form as a browser posts it (unticked checkboxes are absent)."""
    values = settings.DEFAULTS
    data = {
        key: values[key]
        for key in (
            "portal_name",
            "company_name",
            "contact_email",
            "contact_phone",
            "bulletin_message",
            "login_message",
            "login_terms",
            "payment_instructions",
            "payment_terms",
        )
    }
    for key in (
        "quick_pay_enabled",
        "partial_payments",
        "self_registration",
        "request_access",
        "quick_requests",
        "module_invoices",
        "module_statements",
        "module_quotes",
        "module_orders",
        "module_cases",
    ):
        data[key] = "y"
    data["minimum_partial"] = "10.00"
    data["default_roles"] = list(values["default_roles"])
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def admin(client):
    user = factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    return user


def test_agent_gets_403_on_settings_pages_and_partials(client):
    """E5: settings are for admins; an agent is refused on pages, posts and htmx partials."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    assert client.get(URL).status_code == 403
    assert client.post(URL, data=form_data(portal_name="Hacked")).status_code == 403
    assert client.post(URL + "preview/login_message", headers=HX).status_code == 403
    assert client.get(URL + "emails/invitation").status_code == 403
    assert client.post(URL + "emails/invitation/test", data={}).status_code == 403
    assert settings.get("portal_name") == "Doorstep"
    assert "/staff/settings/" not in client.get("/staff/").get_data(as_text=True)


@pytest.mark.parametrize("headers", [{}, HX])
def test_anonymous_and_customers_are_sent_away(client, headers):
    """E5: no settings route answers without a staff login, htmx requests included."""
    response = client.get(URL, headers=headers)
    assert response.status_code in (302, 204)
    target = response.headers.get("Location") or response.headers["HX-Redirect"]
    assert target.startswith("/staff/login")
    factories.portal_user(email="pat@example.com")
    client.post("/login", data={"email": "pat@example.com", "password": factories.PASSWORD})
    response = client.post(URL, data=form_data(portal_name="x"), headers=headers)
    assert response.status_code in (302, 204)
    assert settings.get("portal_name") == "Doorstep"


def test_settings_page_shows_every_field_of_the_issue(client, admin):
    """The page holds every setting the issue asks for, filled with the values in effect."""
    html = client.get(URL).get_data(as_text=True)
    for name in (
        "portal_name",
        "company_name",
        "contact_email",
        "contact_phone",
        "bulletin_message",
        "login_message",
        "login_terms",
        "require_terms_acceptance",
        "payment_instructions",
        "payment_terms",
        "quick_pay_enabled",
        "quick_pay_account_number",
        "partial_payments",
        "minimum_partial",
        "self_registration",
        "request_access",
        "quick_requests",
        "module_invoices",
        "module_statements",
        "module_quotes",
        "module_orders",
        "module_cases",
        "default_roles",
    ):
        assert f'name="{name}"' in html, name
    assert 'value="10.00"' in html
    for kind in ("invitation", "receipt", "password_reset", "case_update", "quote_published"):
        assert f"/staff/settings/emails/{kind}" in html


def test_every_change_is_saved_audited_and_in_effect_on_the_next_request(client, admin):
    """Each changed setting is one audit entry old -> new; the next page shows it."""
    data = form_data(
        portal_name="Northwind Portal",
        bulletin_message="**Closed** on Friday",
        quick_pay_enabled=None,
        minimum_partial="25.50",
        default_roles=["invoices", "company_admin"],
    )
    response = client.post(URL, data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == URL
    values = settings.load()
    assert values["portal_name"] == "Northwind Portal"
    assert values["quick_pay_enabled"] is False
    assert values["minimum_partial_cents"] == 2550
    assert values["default_roles"] == ["invoices", "company_admin"]
    entries = {
        e.object_id: json.loads(e.detail)
        for e in AuditLog.select().where(AuditLog.action == "settings.changed")
    }
    assert set(entries) == {
        "portal_name",
        "bulletin_message",
        "quick_pay_enabled",
        "minimum_partial_cents",
        "default_roles",
    }
    assert entries["portal_name"] == {
        "key": "portal_name",
        "old": "Doorstep",
        "new": "Northwind Portal",
    }
    assert all(e.actor_label == "boss@example.com" for e in AuditLog.select())
    page = client.get(URL).get_data(as_text=True)
    assert "Northwind Portal" in page and "Settings saved (5 changes)" in page
    # Saving again with the same values changes and audits nothing.
    client.post(URL, data=data)
    assert AuditLog.select().where(AuditLog.action == "settings.changed").count() == 5


def test_new_login_terms_get_a_new_version(client, admin):
    """Changing the terms text asks everyone again: the version goes up (and is audited)."""
    client.post(URL, data=form_data(login_terms="Be nice.", require_terms_acceptance="y"))
    assert settings.get("login_terms_version") == 1
    assert settings.get("require_terms_acceptance") is True
    client.post(URL, data=form_data(login_terms="Be nicer.", require_terms_acceptance="y"))
    assert settings.get("login_terms_version") == 2
    assert AuditLog.select().where(AuditLog.object_id == "login_terms_version").count() == 2


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"portal_name": ""}, "portal_name", "Give the portal a name."),
        ({"contact_email": "not-an-email"}, "contact_email", "Enter a valid email address."),
        ({"minimum_partial": "12.345"}, "minimum_partial", "Enter an amount like 1250.00"),
        ({"default_roles": []}, "default_roles", "Choose at least one role"),
        (
            {"require_terms_acceptance": "y", "login_terms": ""},
            "require_terms_acceptance",
            "Write the terms",
        ),
    ],
)
def test_invalid_input_is_422_keeps_typed_values_and_saves_nothing(
    client, admin, overrides, field, message
):
    """Bad input: 422, the message next to its field, what was typed kept, nothing stored."""
    data = form_data(company_name="Typed Company", bulletin_message="Typed *bulletin*", **overrides)
    response = client.post(URL, data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert f'id="{field}-error"' in html
    assert 'value="Typed Company"' in html
    assert "Typed *bulletin*" in html
    assert Setting.select().count() == 0
    assert AuditLog.select().where(AuditLog.action == "settings.changed").count() == 0


def test_markdown_preview_is_sanitized_fragment(client, admin):
    """The live preview renders Markdown as customers will see it, scripts and hx-* removed."""
    response = client.post(
        URL + "preview/bulletin_message",
        data={"bulletin_message": '**Hi** <script>alert(1)</script><b hx-get="/x">b</b>'},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<strong>Hi</strong>" in html
    assert "<script" not in html and "hx-get" not in html
    assert "<html" not in html
    assert client.post(URL + "preview/portal_name", headers=HX).status_code == 404


def test_preview_button_without_javascript_saves_nothing(client, admin):
    """STYLE 8: the Preview button works as a plain form post and does not save."""
    response = client.post(URL, data=form_data(login_message="# Welcome *back*", action="preview"))
    assert response.status_code == 200
    assert "<em>back</em>" in response.get_data(as_text=True)
    assert settings.get("login_message") == ""


def test_settings_post_needs_csrf(make_app):
    """F1: with CSRF on, a settings post without the token is refused and changes nothing."""
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        from portal.db import db

        db.connect(reuse_if_open=True)
        factories.staff(email="boss@example.com", admin=True)
        client = app.test_client()
        page = client.get("/staff/login").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        client.post(
            "/staff/login",
            data={"email": "boss@example.com", "password": factories.PASSWORD, "csrf_token": token},
        )
        assert client.get(URL).status_code == 200
        response = client.post(URL, data=form_data(portal_name="Forged"))
        assert response.status_code == 400
        response = client.post(URL + "preview/login_message", data={"login_message": "x"})
        assert response.status_code == 400
        assert settings.get("portal_name") == "Doorstep"
        page = client.get(URL).get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        response = client.post(URL, data=form_data(portal_name="Real", csrf_token=token))
        assert response.status_code == 303
        assert settings.get("portal_name") == "Real"
        db.close()


# --- email templates --------------------------------------------------------------------


def test_email_template_page_lists_placeholders_and_previews(client, admin):
    """The template page shows the text in use, its placeholders and a sample rendering."""
    html = client.get(URL + "emails/invitation").get_data(as_text=True)
    assert "{{ link }}" in html and "{{ portal_name }}" in html
    assert "Pat Buyer" in html  # the sample rendering
    assert client.get(URL + "emails/no_such_kind").status_code == 404


def test_saving_a_template_is_used_for_the_next_email_and_audited(client, admin):
    """A saved override is what the outbox sends; the change is audited old -> new."""
    response = client.post(
        URL + "emails/receipt",
        data={"subject": "Thanks, {{ name }}", "body": "We got {{ amount }}.\n"},
    )
    assert response.status_code == 303
    entry = AuditLog.get(AuditLog.action == "email_template.changed")
    assert json.loads(entry.detail)["new"]["subject"] == "Thanks, {{ name }}"

    # What the payments core passes: the payment and its applications, never the strings.
    payment = factories.payment(factories.customer(), amount_cents=500, payer_name="Lee")
    message = email_templates.queue("receipt", "x@example.com", payment=payment, applications=[])
    assert message.subject == "Thanks, Lee"
    assert message.body_text == "We got $5.00.\n"
    html = client.get(URL).get_data(as_text=True)
    assert "Edited" in html


@pytest.mark.parametrize(
    "subject, body, message",
    [
        ("", "Body", "Write a subject line."),
        ("Hi {{ nope }}", "Body", "Unknown placeholder"),
        ("Hi", "{{ name.__class__ }}", "Not allowed"),
        ("Hi", "{% for %}", "Line 1"),
    ],
)
def test_bad_templates_are_422_and_keep_the_text(client, admin, subject, body, message):
    """A template that cannot work is refused next to its field; what was typed stays."""
    response = client.post(URL + "emails/invitation", data={"subject": subject, "body": body})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert Setting.select().count() == 0


def test_htmx_preview_of_a_template_as_typed(client, admin):
    """The live preview renders the typed text with sample values, without saving."""
    response = client.post(
        URL + "emails/invitation/preview",
        data={"subject": "Welcome {{ name }}", "body": "Go to {{ link }}"},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Welcome Pat Buyer" in html and "http://localhost/invitation/EXAMPLE" in html
    assert "<html" not in html
    assert Setting.select().count() == 0


def test_send_me_a_test_arrives_at_the_smtp_server(client, admin, mailbox):
    """ "Send me a test" queues the typed text with sample values; it reaches SMTP."""
    response = client.post(
        URL + "emails/case_update/test",
        data={"subject": "Case {{ case_number }}", "body": "Hello {{ name }}"},
    )
    assert response.status_code == 200
    assert "on its way to boss@example.com" in response.get_data(as_text=True)
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "boss@example.com"
    assert message["Subject"] == "[Test] Case CS-000017"
    assert "Hello Pat Buyer" in message.get_content()
    assert OutboxMessage.get().status == "sent"
    assert Setting.select().count() == 0  # a test send stores nothing


def test_reset_goes_back_to_the_built_in_text(client, admin):
    """Reset drops the override (audited); the built-in text is in use again."""
    client.post(URL + "emails/invitation", data={"subject": "Custom", "body": "Custom body"})
    assert Setting.select().count() == 1
    response = client.post(URL + "emails/invitation/reset")
    assert response.status_code == 303
    assert Setting.select().count() == 0
    assert AuditLog.select().where(AuditLog.action == "email_template.reset").count() == 1


def test_every_built_in_template_previews_with_sample_values(client, admin):
    """Every kind has made-up values for each of its placeholders, so every built-in text can
    be previewed, edited and test-sent."""
    from portal.services import email_templates

    with client.application.test_request_context():
        kinds = email_templates.kinds()
    assert {"invitation", "receipt", "password_reset", "case_update", "quote_published"} <= set(
        kinds
    )
    for kind in kinds:
        response = client.get(URL + f"emails/{kind}")
        assert response.status_code == 200, kind
        assert 'class="mail-subject"' in response.get_data(as_text=True), kind
    html = client.get(URL + "emails/receipt").get_data(as_text=True)
    assert "Receipt R-000123" in html and "$1,250.00" in html
