"""Staff-editable email templates: stored overrides of `templates/email/<kind>.txt`.

An override is a subject line and a plain-text body with `{{ name }}` placeholders. It is
rendered by a locked-down sandboxed Jinja environment, because the text comes from a person
(staff) and is run with live objects (the user, the invoice) in its context: no calls, no
private or secret attributes, no arithmetic that could build huge strings, no includes.
Overrides live in the settings table under `email_template:<kind>`.
"""

import json
import logging
from dataclasses import dataclass, field

from flask import current_app
from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from ..db import write_txn
from ..filters import datefmt, datetimefmt, money
from ..models import Setting
from ..security import format_code
from . import audit, outbox, settings

log = logging.getLogger(__name__)

KEY_PREFIX = "email_template:"
MAX_SUBJECT = 200
MAX_BODY = 20_000
# Attribute names a template may never read, whatever object they sit on.
SECRET_WORDS = ("password", "hash", "sealed", "stamp", "secret", "token", "key")

COMMON = {
    "portal_name": "The portal's name",
    "company_name": "Your company's name",
    "contact_email": "Your contact email",
    "contact_phone": "Your contact phone",
    "base_url": "The portal's address",
}


@dataclass(frozen=True)
class Kind:
    """One kind of email: what it is for, its placeholders, and a fallback text."""

    label: str
    purpose: str
    placeholders: dict
    sample: dict
    fallback_subject: str = ""
    fallback_body: str = ""
    extra: dict = field(default_factory=dict)


KINDS = {
    "invitation": Kind(
        "Invitation",
        "Sent when staff or a company admin grants someone a portal login.",
        {
            "name": "The invited person's name",
            "customer_name": "Their company",
            "link": "The link that sets their password",
            "expires": "How long the link works",
        },
        {
            "name": "Pat Buyer",
            "customer_name": "Acme Manufacturing",
            "link": "{base}/invitation/EXAMPLE",
            "expires": "7 days",
        },
        "Your login to {{ portal_name }}",
        "Hello {{ name }},\n\n{{ company_name }} has given you a login to {{ portal_name }} for "
        "{{ customer_name }}.\n\nSet your password here (the link works for {{ expires }}):\n"
        "{{ link }}\n\nQuestions? Write to {{ contact_email }}.\n",
    ),
    "receipt": Kind(
        "Payment receipt",
        "Sent when a payment is received or confirmed.",
        {
            "name": "The payer's name",
            "receipt_number": "The receipt number",
            "amount": "The amount paid, formatted",
            "invoices": "The invoices it paid",
            "link": "A link to the receipt",
        },
        {
            "name": "Pat Buyer",
            "receipt_number": "R-000123",
            "amount": "$1,250.00",
            "invoices": "INV-000042",
            "link": "{base}/receipts/EXAMPLE",
        },
        "Receipt {{ receipt_number }} from {{ company_name }}",
        "Hello {{ name }},\n\nThank you: we received {{ amount }} for {{ invoices }}.\n"
        "Receipt number: {{ receipt_number }}\n\n{{ link }}\n",
    ),
    "password_reset": Kind(
        "Password reset",
        "Sent when someone asks to reset a forgotten password.",
        {"name": "The person's name", "link": "The reset link", "expires": "How long it works"},
        {"name": "Pat Buyer", "link": "{base}/reset/EXAMPLE", "expires": "1 hour"},
        "Reset your {{ portal_name }} password",
        "Hello {{ name }},\n\nUse this link to choose a new password (it works for "
        "{{ expires }}):\n{{ link }}\n\nIf you did not ask for this, ignore this email.\n",
    ),
    "case_update": Kind(
        "Support case update",
        "Sent to the customer when staff reply to or change a support case.",
        {
            "name": "The customer's name",
            "case_number": "The case number",
            "subject": "The case subject",
            "message": "The reply or change",
            "link": "A link to the case",
        },
        {
            "name": "Pat Buyer",
            "case_number": "CS-000017",
            "subject": "Damaged delivery",
            "message": "We have sent a replacement today.",
            "link": "{base}/cases/17",
        },
        "[{{ case_number }}] {{ subject }}",
        "Hello {{ name }},\n\n{{ message }}\n\nSee the case: {{ link }}\n",
    ),
    "quote_published": Kind(
        "Quote published",
        "Sent when a quote is ready for the customer to accept or decline.",
        {
            "name": "The customer's name",
            "quote_number": "The quote number",
            "total": "The quote total, formatted",
            "valid_until": "The last day it can be accepted",
            "link": "A link to the quote",
        },
        {
            "name": "Pat Buyer",
            "quote_number": "Q-000008",
            "total": "$4,980.00",
            "valid_until": "Dec 31, 2026",
            "link": "{base}/quotes/8",
        },
        "Your quote {{ quote_number }} is ready",
        "Hello {{ name }},\n\nQuote {{ quote_number }} for {{ total }} is ready. You can "
        "accept it until {{ valid_until }}:\n{{ link }}\n",
    ),
    "shipment_sent": Kind(
        "Order shipped",
        "Sent when an imported shipment of a customer's order is on its way (shipped in the "
        "last week and not yet delivered: importing old shipments sends nothing).",
        {
            "name": "The customer's name",
            "order_number": "The order number",
            "customer_po": "The customer's PO number (may be empty)",
            "shipment_number": "The shipment number",
            "carrier": "The carrier (may be empty)",
            "tracking_number": "The tracking number (may be empty)",
            "tracking_link": "The carrier's tracking page, for carriers the portal knows",
            "link": "A link to the order",
        },
        {
            "name": "Pat Buyer",
            "order_number": "SO-52017",
            "customer_po": "PO-4471",
            "shipment_number": "SH-88120",
            "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "tracking_link": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
            "link": "{base}/orders/example",
        },
        "Your order {{ order_number }} has shipped",
        "Hello {{ name }},\n\nShipment {{ shipment_number }} of order {{ order_number }} is on "
        "its way.\n\nFollow the order: {{ link }}\n",
    ),
}


class MailSandbox(SandboxedEnvironment):
    """A sandbox that only substitutes values: reading public attributes and filtering."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_callable(self, obj) -> bool:
        # Model methods (save, delete_instance) are public: allowing calls would let a template
        # change data. Placeholders never need a call; filters are applied without one.
        return False

    def is_safe_attribute(self, obj, attr, value) -> bool:
        if any(word in attr.lower() for word in SECRET_WORDS):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj, attribute):
        # Jinja would render an empty string; staff should hear why their text is refused.
        raise SecurityError(f"{attribute!r} cannot be read in an email template")

    def call_binop(self, context, operator, left, right):
        raise SecurityError("calculations are not available in email templates")


SAFE_FILTERS = (
    "default",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "truncate",
    "replace",
    "join",
    "length",
    "round",
    "int",
)


def _environment() -> MailSandbox:
    env = current_app.extensions.get("mail_sandbox")
    if env is None:
        env = MailSandbox(autoescape=False, keep_trailing_newline=True, finalize=_finalize)
        env.globals.clear()  # no range(), lipsum(), cycler(): nothing callable
        env.filters = {name: env.filters[name] for name in SAFE_FILTERS}
        env.filters.update(money=money, date=datefmt, datetime=datetimefmt, code=format_code)
        current_app.extensions["mail_sandbox"] = env
    return env


def _finalize(value):
    return "" if value is None else value


class TemplateProblem(ValueError):
    """A template staff wrote that cannot be used; `field` is subject or body."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


# --- which kinds exist and what they say by default ------------------------------------


def kinds() -> list[str]:
    """The known kinds plus any other `templates/email/*.txt` in the application."""
    names = set(KINDS)
    for name in current_app.jinja_env.list_templates(extensions=["txt"]):
        if name.startswith("email/") and name.count("/") == 1:
            names.add(name.removeprefix("email/").removesuffix(".txt"))
    return sorted(names, key=lambda k: (k not in KINDS, list(KINDS).index(k) if k in KINDS else k))


def label(kind: str) -> str:
    """A person-readable name for a kind."""
    return KINDS[kind].label if kind in KINDS else kind.replace("_", " ").capitalize()


def purpose(kind: str) -> str:
    """When this email is sent."""
    return KINDS[kind].purpose if kind in KINDS else ""


def file_source(kind: str) -> str | None:
    """The raw text of `templates/email/<kind>.txt`, or None when there is no such file."""
    env = current_app.jinja_env
    try:
        source, _, _ = env.loader.get_source(env, f"email/{kind}.txt")
    except TemplateNotFound:
        return None
    return source


def default(kind: str) -> tuple[str, str]:
    """The (subject, body) the portal sends when nobody has edited this kind."""
    source = file_source(kind)
    if source is None:
        meta_ = KINDS.get(kind)
        return (meta_.fallback_subject, meta_.fallback_body) if meta_ else ("", "")
    first, _, body = source.partition("\n")
    return first.removeprefix("Subject:").strip(), body.lstrip("\n")


def placeholders(kind: str) -> dict:
    """{name: description} of what a template of this kind may use."""
    names = dict(KINDS[kind].placeholders) if kind in KINDS else {}
    source = file_source(kind)
    if source is not None:
        # Whatever the built-in file uses is what its callers really pass.
        try:
            used = meta.find_undeclared_variables(current_app.jinja_env.parse(source))
        except TemplateSyntaxError:
            used = set()
        for name in sorted(used - set(current_app.jinja_env.globals) - {"portal"}):
            names.setdefault(name, "Provided by the portal when this email is sent")
    names.update(COMMON)
    return names


def stored(kind: str) -> dict | None:
    """The stored override {subject, body} for a kind, or None."""
    row = Setting.get_or_none(Setting.key == KEY_PREFIX + kind)
    return json.loads(row.value) if row else None


def customized_kinds() -> set[str]:
    """Kinds that have a stored override."""
    rows = Setting.select(Setting.key).where(Setting.key.startswith(KEY_PREFIX))
    return {row.key.removeprefix(KEY_PREFIX) for row in rows}


def current(kind: str) -> tuple[str, str]:
    """The (subject, body) in use: the override when there is one, else the default."""
    override = stored(kind)
    if override:
        return override["subject"], override["body"]
    return default(kind)


# --- rendering --------------------------------------------------------------------------


def common_context() -> dict:
    """Values every template can use, whatever the caller passed."""
    values = settings.load()
    return {
        "portal": values,
        "portal_name": values["portal_name"],
        "company_name": values["company_name"],
        "contact_email": values["contact_email"],
        "contact_phone": values["contact_phone"],
        "base_url": current_app.config["BASE_URL"],
    }


def sample_objects() -> dict:
    """Unsaved, made-up records for the placeholders that are objects in the built-in texts
    (a receipt reads `payment.amount_cents`, a pay link `invoice.balance_cents`)."""
    from datetime import date, timedelta

    from ..db import utcnow
    from ..models import (
        Contact,
        Customer,
        Invoice,
        Payment,
        PaymentApplication,
        PaymentAttempt,
        PaymentAttemptItem,
    )

    customer = Customer(account_number="ACME-001", name="Acme Manufacturing")
    invoice = Invoice(
        number="INV-000042",
        customer=customer,
        issue_date=date.today() - timedelta(days=10),
        due_date=date.today() + timedelta(days=20),
        total_cents=125_000,
        amount_paid_cents=0,
        currency="USD",
    )
    payment = Payment(
        receipt_number="R-000123",
        provider="offline",
        provider_reference="BANK-7781",
        customer=customer,
        amount_cents=125_000,
        unapplied_cents=0,
        currency="USD",
        payer_name="Pat Buyer",
        payer_email="pat@example.com",
        received_at=utcnow(),
    )
    attempt = PaymentAttempt(
        provider="offline",
        customer=customer,
        amount_cents=125_000,
        currency="USD",
        payer_name="Pat Buyer",
        payer_email="pat@example.com",
    )
    return {
        "customer": customer,
        "invoice": invoice,
        "payment": payment,
        "attempt": attempt,
        "applications": [
            PaymentApplication(payment=payment, invoice=invoice, amount_cents=125_000)
        ],
        "items": [PaymentAttemptItem(attempt=attempt, invoice=invoice, amount_cents=125_000)],
        "contact": Contact(customer=customer, first_name="Pat", last_name="Buyer"),
    }


def sample_context(kind: str, name: str = "") -> dict:
    """Made-up values for previews and test sends (never real customer data)."""
    base = current_app.config["BASE_URL"].rstrip("/")
    context = {n: f"[{n}]" for n in placeholders(kind)}
    objects = sample_objects()
    context.update({n: objects[n] for n in context if n in objects})
    if kind in KINDS:
        context.update({k: v.replace("{base}", base) for k, v in KINDS[kind].sample.items()})
    if name:
        context["name"] = name
    context.update(common_context())
    return context


def render(subject: str, body: str, context: dict) -> tuple[str, str]:
    """Render a subject and body in the sandbox; raises TemplateProblem naming the field."""
    env = _environment()
    out = []
    for field_name, source in (("subject", subject), ("body", body)):
        try:
            out.append(env.from_string(source).render(context))
        except TemplateSyntaxError as exc:
            raise TemplateProblem(field_name, f"Line {exc.lineno}: {exc.message}") from exc
        except SecurityError as exc:
            raise TemplateProblem(field_name, f"Not allowed in an email template: {exc}") from exc
        except TemplateError as exc:
            raise TemplateProblem(field_name, f"This template cannot be rendered: {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise TemplateProblem(
                field_name, f"A placeholder could not be filled in: {exc}"
            ) from exc
    # A subject is one header line: values with line breaks are folded into spaces (B9).
    return " ".join(out[0].split()), out[1]


def render_stored(kind: str, context: dict) -> tuple[str, str] | None:
    """The override of `kind` rendered with `context`, or None to use the file template.

    A broken override must never stop the change that sends the email (an invitation, a
    receipt): it is logged and the built-in template is used instead.
    """
    override = stored(kind)
    if not override:
        return None
    values = common_context()
    values.update(context)
    if "name" not in values:
        person = values.get("user") or values.get("contact")
        values["name"] = getattr(person, "display_name", None) or getattr(person, "full_name", "")
    try:
        return render(override["subject"], override["body"], values)
    except TemplateProblem as exc:
        log.warning("email template %s override failed (%s); using the built-in one", kind, exc)
        return None


# --- staff actions ----------------------------------------------------------------------


def validate(kind: str, subject: str, body: str) -> tuple[str, str]:
    """Check a template as staff wrote it: its sample rendering, or TemplateProblem."""
    subject, body = (subject or "").strip(), (body or "").replace("\r\n", "\n")
    if not subject:
        raise TemplateProblem("subject", "Write a subject line.")
    if "\n" in subject or "\r" in subject:
        raise TemplateProblem("subject", "The subject must be a single line.")
    if len(subject) > MAX_SUBJECT:
        raise TemplateProblem("subject", f"Keep the subject under {MAX_SUBJECT} characters.")
    if not body.strip():
        raise TemplateProblem("body", "Write the message.")
    if len(body) > MAX_BODY:
        raise TemplateProblem("body", f"Keep the message under {MAX_BODY:,} characters.")
    allowed = set(placeholders(kind)) | {"portal"}
    env = _environment()
    for field_name, source in (("subject", subject), ("body", body)):
        try:
            used = meta.find_undeclared_variables(env.parse(source))
        except TemplateSyntaxError as exc:
            raise TemplateProblem(field_name, f"Line {exc.lineno}: {exc.message}") from exc
        unknown = sorted(used - allowed)
        if unknown:
            names = ", ".join("{{ " + n + " }}" for n in unknown)
            raise TemplateProblem(
                field_name, f"Unknown placeholder {names}. Use one of those listed beside the form."
            )
    return render(subject, body, sample_context(kind))


def save(kind: str, subject: str, body: str, by) -> bool:
    """Store an override (validated); audited old -> new. Returns False when nothing changed."""
    validate(kind, subject, body)
    subject, body = subject.strip(), body.replace("\r\n", "\n")
    old_subject, old_body = current(kind)
    if (old_subject, old_body) == (subject, body):
        return False
    value = json.dumps({"subject": subject, "body": body})
    with write_txn():
        Setting.insert(key=KEY_PREFIX + kind, value=value).on_conflict(
            conflict_target=[Setting.key], update={Setting.value: value}
        ).execute()
        audit.record(
            "email_template.changed",
            Setting(key=KEY_PREFIX + kind),
            actor=by,
            kind=kind,
            old={"subject": old_subject, "body": old_body},
            new={"subject": subject, "body": body},
        )
    return True


def reset(kind: str, by) -> bool:
    """Drop the override so the built-in template is used again; audited."""
    old = stored(kind)
    if old is None:
        return False
    with write_txn():
        Setting.delete().where(Setting.key == KEY_PREFIX + kind).execute()
        audit.record(
            "email_template.reset", Setting(key=KEY_PREFIX + kind), actor=by, kind=kind, old=old
        )
    return True


def send_test(kind: str, subject: str, body: str, by) -> None:
    """Queue the template as written, with sample values, to the staff member via the outbox."""
    rendered_subject, rendered_body = validate(kind, subject, body)
    with write_txn():
        outbox.queue(by.email, f"[Test] {rendered_subject}", rendered_body, kind=f"test:{kind}")
        audit.record(
            "email_template.test_sent", Setting(key=KEY_PREFIX + kind), actor=by, kind=kind
        )
